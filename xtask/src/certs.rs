//! Test certificates for the TLS cells of `interop-test` and the TLS cases of
//! `bench`, made at run time with rcgen: a CA and a certificate for
//! `localhost` / `127.0.0.1` signed by it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
};

/// A distinguished name of one common name. The CA and the server need
/// different ones: OpenSSL takes a certificate whose subject is its issuer
/// for self-signed.
fn named(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// The PEM files written by [`write`].
#[derive(Clone, Debug)]
pub(crate) struct Files {
    pub(crate) ca: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

impl Files {
    /// Gives a process the files: `{prefix}_CA` (what a client trusts),
    /// `{prefix}_CERT` and `{prefix}_KEY` (what a server presents), e.g.
    /// `PYRPC_INTEROP_TLS_CA`.
    pub(crate) fn set_env(&self, cmd: &mut Command, prefix: &str) {
        cmd.env(format!("{prefix}_CA"), &self.ca)
            .env(format!("{prefix}_CERT"), &self.cert)
            .env(format!("{prefix}_KEY"), &self.key);
    }
}

/// Makes a CA and a server certificate and writes them into `dir`.
pub(crate) fn write(dir: &Path) -> Result<Files> {
    std::fs::create_dir_all(dir)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = named("pyrpc test CA");
    let ca =
        CertifiedIssuer::self_signed(params, KeyPair::generate()?).context("making the test CA")?;
    let key = KeyPair::generate()?;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name = named("localhost");
    let cert = params
        .signed_by(&key, &ca)
        .context("making the test server certificate")?;
    let files = Files {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&files.ca, ca.pem())?;
    std::fs::write(&files.cert, cert.pem())?;
    std::fs::write(&files.key, key.serialize_pem())?;
    Ok(files)
}
