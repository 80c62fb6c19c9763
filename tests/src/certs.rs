//! Certificates made at test time with rcgen: a CA, a server certificate for
//! `localhost` and `127.0.0.1` signed by it, a client certificate, an expired
//! server certificate, and a second CA that signed nothing of ours.

use pyrpc_transport::{ClientTls, ServerTls};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A certificate and its key, PEM.
#[derive(Clone, Debug)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// Everything a TLS test needs.
#[derive(Clone, Debug)]
pub struct TestPki {
    /// The CA's certificate (PEM).
    pub ca: String,
    /// A CA nobody here was signed by (PEM).
    pub other_ca: String,
    /// For `localhost`, `127.0.0.1` and `::1`, signed by `ca`.
    pub server: Pem,
    /// As `server`, but expired a year ago.
    pub expired_server: Pem,
    /// A client certificate signed by `ca`.
    pub client: Pem,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(issuer: &CertifiedIssuer<'static, KeyPair>, names: &[&str], expired: bool) -> Pem {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names[0]);
    params.distinguished_name = dn;
    if expired {
        let now = rcgen::date_time_ymd(2026, 1, 1);
        params.not_before = now - std::time::Duration::from_secs(3 * 365 * 86_400);
        params.not_after = now - std::time::Duration::from_secs(365 * 86_400);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

impl TestPki {
    /// Makes fresh certificates.
    pub fn new() -> Self {
        // Distinct names: two CAs of one name look like one CA with a bad signature.
        let id = uuid::Uuid::new_v4();
        let ca_ = ca(&format!("pyrpc test CA {id}"));
        let other = ca(&format!("some other CA {id}"));
        let names = ["localhost", "127.0.0.1", "::1"];
        TestPki {
            ca: ca_.pem(),
            other_ca: other.pem(),
            server: leaf(&ca_, &names, false),
            expired_server: leaf(&ca_, &names, true),
            client: leaf(&ca_, &["pyrpc-test-client"], false),
        }
    }

    /// The server's TLS, optionally requiring client certificates signed by the CA.
    pub fn server_tls(&self, mutual: bool) -> ServerTls {
        let ca = mutual.then_some(self.ca.as_bytes());
        ServerTls::from_pem(self.server.cert.as_bytes(), self.server.key.as_bytes(), ca).unwrap()
    }

    /// A client trusting the CA, optionally presenting the client certificate.
    pub fn client_tls(&self, with_cert: bool) -> ClientTls {
        let identity =
            with_cert.then_some((self.client.cert.as_bytes(), self.client.key.as_bytes()));
        ClientTls::from_pem(Some(self.ca.as_bytes()), identity).unwrap()
    }

    /// Writes the PEM files into `dir`: ca.pem, other-ca.pem, server.pem,
    /// server.key, expired.pem, expired.key, client.pem, client.key.
    pub fn write_to(&self, dir: &std::path::Path) -> std::io::Result<()> {
        let files = [
            ("ca.pem", &self.ca),
            ("other-ca.pem", &self.other_ca),
            ("server.pem", &self.server.cert),
            ("server.key", &self.server.key),
            ("expired.pem", &self.expired_server.cert),
            ("expired.key", &self.expired_server.key),
            ("client.pem", &self.client.cert),
            ("client.key", &self.client.key),
        ];
        for (name, text) in files {
            std::fs::write(dir.join(name), text)?;
        }
        Ok(())
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}
