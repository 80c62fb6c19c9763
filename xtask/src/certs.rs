//! Test certificates for the TLS cells of `interop-test` and the TLS cases of
//! `bench`, made at run time with rcgen: a CA and a certificate for
//! `localhost` / `127.0.0.1` signed by it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// The PEM files written by [`write`].
#[derive(Clone, Debug)]
pub(crate) struct Files {
    pub(crate) ca: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

impl Files {
    /// Gives a peer the files: `PYRPC_INTEROP_TLS_CA` (what a client trusts),
    /// `PYRPC_INTEROP_TLS_CERT` and `PYRPC_INTEROP_TLS_KEY` (what a server
    /// presents).
    pub(crate) fn set_env(&self, cmd: &mut Command) {
        cmd.env("PYRPC_INTEROP_TLS_CA", &self.ca)
            .env("PYRPC_INTEROP_TLS_CERT", &self.cert)
            .env("PYRPC_INTEROP_TLS_KEY", &self.key);
    }
}

/// Makes a CA and a server certificate and writes them into `dir`.
pub(crate) fn write(dir: &Path) -> Result<Files> {
    std::fs::create_dir_all(dir)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(params, KeyPair::generate()?).context("making the test CA")?;
    let key = KeyPair::generate()?;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let cert = CertificateParams::new(names)?
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
