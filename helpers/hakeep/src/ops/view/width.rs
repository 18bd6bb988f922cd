//! How wide human output may be. `--wide`: no limit. Else `COLUMNS` when it is set (also
//! when stdout is not a terminal, as under `watch`), else the terminal's width when stdout
//! is one, else no limit: a pipe, a file or a log gets every line whole.
//! `COLUMNS` only shapes the output; nothing else reads it.

use std::io::IsTerminal;

/// Narrower than this, output is fitted to this many columns.
pub const MIN: usize = 20;
/// A terminal that does not tell its width.
const FALLBACK: usize = 80;

/// The width to fit stdout's lines to; None: no limit.
pub fn of_stdout(wide: bool) -> Option<usize> {
    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    let columns = if terminal {
        rustix::termios::tcgetwinsize(&stdout)
            .ok()
            .map(|w| w.ws_col)
    } else {
        None
    };
    choose(
        wide,
        std::env::var("COLUMNS").ok().as_deref(),
        terminal,
        columns,
    )
}

/// The rule above, given `COLUMNS`, whether stdout is a terminal and the width it told.
pub fn choose(
    wide: bool,
    columns_env: Option<&str>,
    terminal: bool,
    terminal_columns: Option<u16>,
) -> Option<usize> {
    if wide {
        return None;
    }
    let from_env = columns_env
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0);
    let width = match (from_env, terminal) {
        (Some(c), _) => c,
        (None, true) => terminal_columns
            .map(usize::from)
            .filter(|&c| c > 0)
            .unwrap_or(FALLBACK),
        (None, false) => return None,
    };
    Some(width.max(MIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_means_no_limit() {
        assert_eq!(choose(true, Some("80"), true, Some(100)), None);
    }

    #[test]
    fn columns_overrides_the_terminal_and_applies_to_a_pipe() {
        assert_eq!(choose(false, Some("132"), true, Some(100)), Some(132));
        assert_eq!(choose(false, Some(" 90 "), false, None), Some(90));
    }

    #[test]
    fn a_terminal_is_fitted_to_its_width() {
        assert_eq!(choose(false, None, true, Some(100)), Some(100));
        // Unset, empty or nonsense COLUMNS: the terminal's width.
        assert_eq!(choose(false, Some(""), true, Some(100)), Some(100));
        assert_eq!(choose(false, Some("wide"), true, Some(100)), Some(100));
        assert_eq!(choose(false, Some("0"), true, Some(100)), Some(100));
        // A terminal that does not tell (a serial console): 80.
        assert_eq!(choose(false, None, true, Some(0)), Some(80));
        assert_eq!(choose(false, None, true, None), Some(80));
    }

    #[test]
    fn not_a_terminal_is_not_cut() {
        assert_eq!(choose(false, None, false, None), None);
        assert_eq!(choose(false, Some("x"), false, None), None);
    }

    #[test]
    fn very_narrow_is_fitted_to_the_minimum() {
        assert_eq!(choose(false, Some("5"), true, Some(100)), Some(MIN));
        assert_eq!(choose(false, None, true, Some(12)), Some(MIN));
    }
}
