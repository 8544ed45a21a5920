//! Logging with `tracing`: lines with their syslog priority for journald when run by systemd,
//! readable lines in a terminal, plain lines (no colour codes) when stderr is a file or a pipe.
//!
//! A safety net masks national IDs in every text line ([`MaskingWriter`]); the code does not
//! log IDs, PINs, tokens or keys in the first place. The filter can be changed at run time
//! ([`set_level`], used by the SIGHUP reload).

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;

use crate::config::{LogConfig, LogFormat};

type FilterHandle = reload::Handle<EnvFilter, tracing_subscriber::Registry>;

/// The installed filter's reload handle, and whether `RUST_LOG` set it.
static FILTER: OnceLock<(FilterHandle, bool)> = OnceLock::new();

/// Installs the global subscriber. `RUST_LOG` overrides the configured level.
pub fn init(cfg: &LogConfig) {
    let from_env = EnvFilter::try_from_default_env().ok();
    let overridden = from_env.is_some();
    let filter =
        from_env.or_else(|| EnvFilter::try_new(&cfg.level).ok()).unwrap_or_else(|| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    // systemd sets JOURNAL_STREAM when stdout/stderr go to the journal.
    let journald = match cfg.format {
        LogFormat::Journald => true,
        LogFormat::Text => false,
        LogFormat::Auto => std::env::var_os("JOURNAL_STREAM").is_some(),
    };
    // For the journal: one line per event on stderr, led by its syslog priority (`<3>` … `<7>`,
    // which journald reads as the entry's PRIORITY) and without a timestamp (journald stamps
    // each entry). Going through stderr, like the terminal's lines, every line passes the
    // national-ID mask.
    let layer = tracing_subscriber::fmt::layer().with_target(false);
    let installed = if journald {
        let layer = layer
            .without_time()
            .with_ansi(false)
            .event_format(SyslogPriority(tracing_subscriber::fmt::format().without_time().with_target(false)))
            .with_writer(MaskingWriter::new(std::io::stderr));
        tracing_subscriber::registry().with(filter).with(layer).try_init()
    } else {
        let layer =
            layer.with_writer(MaskingWriter::new(std::io::stderr)).with_ansi(std::io::stderr().is_terminal());
        tracing_subscriber::registry().with(filter).with(layer).try_init()
    };
    if installed.is_ok() {
        let _ = FILTER.set((handle, overridden));
    }
}

/// An event format that leads each line with the event's syslog priority in the `<N>` form
/// systemd reads on a service's stderr (`SyslogLevelPrefix=`, on by default).
#[derive(Debug, Clone)]
pub struct SyslogPriority<F>(pub F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for SyslogPriority<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        // sd-daemon(3): 3 err, 4 warning, 6 info, 7 debug.
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            tracing::Level::DEBUG | tracing::Level::TRACE => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}

/// What [`set_level`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LevelChange {
    /// The new filter is in force.
    Applied,
    /// `RUST_LOG` set the filter at start; it stays.
    OverriddenByEnv,
    /// No subscriber of ours is installed (a test, or another subscriber).
    NotInstalled,
}

/// Replaces the log filter (a `tracing` directive such as `debug` or `mtu=debug,info`); the
/// error says why a directive does not parse. `RUST_LOG`, when set at start, keeps precedence.
pub fn set_level(level: &str) -> Result<LevelChange, String> {
    let filter = EnvFilter::try_new(level).map_err(|e| format!("log.level {level:?}: {e}"))?;
    let Some((handle, overridden)) = FILTER.get() else { return Ok(LevelChange::NotInstalled) };
    if *overridden {
        return Ok(LevelChange::OverriddenByEnv);
    }
    handle.reload(filter).map_err(|e| e.to_string())?;
    Ok(LevelChange::Applied)
}

/// Whether `c` is a decimal digit as IDs are written: Latin `0–9`, Arabic-Indic `٠–٩` or
/// Eastern Arabic-Indic `۰–۹`.
fn is_id_digit(c: char) -> bool {
    c.is_ascii_digit() || ('\u{0660}'..='\u{0669}').contains(&c) || ('\u{06F0}'..='\u{06F9}').contains(&c)
}

/// Digits in an Egyptian national ID.
pub const NATIONAL_ID_DIGITS: usize = 14;
/// Digits of a masked national ID left visible (the last ones), enough to tell two apart.
pub const NATIONAL_ID_SHOWN: usize = 4;

/// Masks every run of exactly 14 digits (Latin or Arabic-Indic, mixed or not: an Egyptian national
/// ID) in `text`: all but the last four digits become `*`. Longer or shorter runs of digits are
/// left alone (journal sequence numbers, amounts, timestamps).
pub fn mask_national_ids(text: &str) -> std::borrow::Cow<'_, str> {
    // Fast path: no run of 14 digits at all.
    let mut run = 0usize;
    let mut found = false;
    for c in text.chars() {
        if is_id_digit(c) {
            run += 1;
        } else {
            found |= run == NATIONAL_ID_DIGITS;
            run = 0;
        }
    }
    found |= run == NATIONAL_ID_DIGITS;
    if !found {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut digits: Vec<char> = Vec::new();
    let flush = |digits: &mut Vec<char>, out: &mut String| {
        if digits.len() == NATIONAL_ID_DIGITS {
            let hidden = NATIONAL_ID_DIGITS - NATIONAL_ID_SHOWN;
            out.extend(std::iter::repeat_n('*', hidden));
            out.extend(&digits[hidden..]);
        } else {
            out.extend(digits.iter());
        }
        digits.clear();
    };
    for c in text.chars() {
        if is_id_digit(c) {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    std::borrow::Cow::Owned(out)
}

/// A [`MakeWriter`] whose writers pass each write through [`mask_national_ids`]. The `fmt`
/// layer writes each event with one call, so an ID is never split between two writes.
#[derive(Debug, Clone)]
pub struct MaskingWriter<M> {
    inner: M,
}

impl<M> MaskingWriter<M> {
    /// Masks what `inner`'s writers get.
    pub fn new(inner: M) -> MaskingWriter<M> {
        MaskingWriter { inner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for MaskingWriter<M> {
    type Writer = Masked<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Masked { inner: self.inner.make_writer() }
    }
}

/// One writer of a [`MaskingWriter`].
#[derive(Debug)]
pub struct Masked<W> {
    inner: W,
}

impl<W: Write> Write for Masked<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self.inner.write_all(mask_national_ids(text).as_bytes())?,
            // Not text: mask what decodes (an ID is ASCII or whole Arabic-Indic characters).
            Err(_) => {
                let lossy = String::from_utf8_lossy(buf);
                self.inner.write_all(mask_national_ids(&lossy).as_bytes())?
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_latin_and_arabic_indic_ids_and_nothing_else() {
        assert_eq!(mask_national_ids("id=29001011234567 ok"), "id=**********4567 ok");
        assert_eq!(mask_national_ids("رقم ٢٩٠٠١٠١١٢٣٤٥٦٧."), "رقم **********٤٥٦٧.");
        assert_eq!(mask_national_ids("۲۹۰۰۱۰۱۱۲۳۴۵۶۷"), "**********۴۵۶۷");
        // 13 and 15 digits, amounts and sequence numbers stay.
        for s in ["2900101123456", "290010112345678", "seq=1234 amount=15000", ""] {
            assert_eq!(mask_national_ids(s), s);
        }
        // Two IDs, and an ID at the very end.
        assert_eq!(mask_national_ids("29001011234567,30112250101234"), "**********4567,**********1234");
    }

    #[derive(Clone, Default)]
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_writer_masks_what_a_subscriber_logs() {
        let sink = Sink::default();
        let make = {
            let sink = sink.clone();
            move || sink.clone()
        };
        let subscriber = tracing_subscriber::fmt()
            .with_writer(MaskingWriter::new(make))
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(national_id = "29001011234567", "dossier for ٢٩٠٠١٠١١٢٣٤٥٦٧");
            tracing::debug!(seq = 12345678901234u64, "fourteen digits are masked whatever they are");
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("29001011234567"), "{text}");
        assert!(!text.contains("٢٩٠٠١٠١١٢٣٤٥٦٧"), "{text}");
        assert!(text.contains("national_id=\"**********4567\""), "{text}");
        assert!(text.contains("dossier for **********٤٥٦٧"), "{text}");
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn journald_lines_carry_their_priority_and_are_masked() {
        let sink = Sink::default();
        let make = {
            let sink = sink.clone();
            move || sink.clone()
        };
        let subscriber = tracing_subscriber::fmt()
            .with_writer(MaskingWriter::new(make))
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .event_format(SyslogPriority(tracing_subscriber::fmt::format().without_time().with_target(false)))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!("e 29001011234567");
            tracing::warn!("w");
            tracing::info!("i");
            tracing::debug!("d");
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        for (line, p) in lines.iter().zip(["<3>", "<4>", "<6>", "<7>"]) {
            assert!(line.starts_with(p), "{line:?} should start with {p}");
        }
        assert!(lines[0].ends_with("e **********4567"), "{text}");
    }
}
