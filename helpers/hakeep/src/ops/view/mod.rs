//! Human output of `hakeep status`: lines fitted to the terminal, times in the local zone.

pub mod cluster;
pub mod group;
pub mod line;
pub mod node;
pub mod table;
pub mod text;
pub mod times;
pub mod width;

use line::Out;
use times::Clock;

/// How to show it: colour or not, how wide (None: no limit), and the time.
#[derive(Debug, Clone)]
pub struct View {
    pub colour: bool,
    pub width: Option<usize>,
    pub clock: Clock,
}

impl View {
    /// For stdout: colour on a terminal (unless NO_COLOR), its width (width.rs), now and
    /// the system's zone.
    pub fn for_stdout(wide: bool) -> View {
        View {
            colour: line::colour_wanted(),
            width: width::of_stdout(wide),
            clock: Clock::system(),
        }
    }

    pub fn out(&self) -> Out {
        Out::new(self.width, self.colour)
    }
}

#[cfg(test)]
mod tests;
