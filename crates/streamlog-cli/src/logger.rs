//! The library's warnings and errors on stderr: what recovery truncated, a directory
//! a topic deletion left alone because it held files that are not the store's, a
//! mirror retrying. The library reports them through `tracing`, which hands them to
//! the `log` facade when no tracing subscriber is installed, as here.

use std::io::Write;

/// Prints `Warn` and `Error` records of streamlog's crates, and `Error` records of
/// the others (librdkafka warns about its own configuration), as
/// `streamlog: warning: ...`.
struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        match metadata.target().starts_with("streamlog") {
            true => metadata.level() <= log::Level::Warn,
            false => metadata.level() <= log::Level::Error,
        }
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let level = match record.level() {
                log::Level::Error => "error",
                _ => "warning",
            };
            let _ = writeln!(std::io::stderr(), "streamlog: {level}: {}", record.args());
        }
    }

    fn flush(&self) {}
}

/// Installs the logger (once; a second call changes nothing).
pub fn install() {
    static LOGGER: Stderr = Stderr;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
}
