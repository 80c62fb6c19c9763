//! [`Report`]: an error with its whole chain of causes, for people.

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its sources, joined by `": "`.
///
/// pyrpc's errors say in `Display` only what failed and leave the cause to
/// [`Error::source`], so that a chain never repeats itself; `Report` is how
/// a message for a person (a log line, an exception, a CLI) shows it all.
///
/// # Examples
///
/// ```
/// use pyrpc_proto::Report;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("cannot load the config")]
/// struct Load(#[source] std::io::Error);
///
/// let e = Load(std::io::Error::other("disk on fire"));
/// assert_eq!(e.to_string(), "cannot load the config");
/// assert_eq!(Report(&e).to_string(), "cannot load the config: disk on fire");
/// ```
#[derive(Clone, Copy)]
pub struct Report<'a>(pub &'a dyn Error);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
