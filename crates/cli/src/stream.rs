//! Streaming generated text to the user while honouring stop strings: text that could be the
//! start of a stop string is held back until it is known not to be one, so a stop string is
//! never printed, not even in part.

use std::io::Write;

pub struct StopStream<W: Write> {
    out: W,
    stops: Vec<String>,
    /// Generated text so far and how much of it has been written.
    text: String,
    written: usize,
}

impl<W: Write> StopStream<W> {
    pub fn new(out: W, stops: &[String]) -> Self {
        Self {
            out,
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            text: String::new(),
            written: 0,
        }
    }

    /// Adds newly generated text; writes what is safe and returns `true` when a stop string
    /// has appeared (everything before it is written, the stop string itself never is).
    pub fn push(&mut self, piece: &str) -> std::io::Result<bool> {
        self.text.push_str(piece);
        // Written text never ends with the start of a stop string (see `held_back`), so a stop
        // string can only begin in the unwritten part.
        let search_from = self.written;
        let found = self
            .stops
            .iter()
            .filter_map(|s| {
                self.text[search_from..]
                    .find(s.as_str())
                    .map(|i| search_from + i)
            })
            .min();
        if let Some(end) = found {
            self.write_to(end)?;
            return Ok(true);
        }
        let safe = self.text.len() - self.held_back();
        self.write_to(safe)?;
        Ok(false)
    }

    /// Writes whatever is still held back (generation ended without a stop string).
    pub fn finish(&mut self) -> std::io::Result<()> {
        self.write_to(self.text.len())
    }

    fn write_to(&mut self, end: usize) -> std::io::Result<()> {
        if end > self.written {
            self.out
                .write_all(&self.text.as_bytes()[self.written..end])?;
            self.out.flush()?;
            self.written = end;
        }
        Ok(())
    }

    /// Length of the longest suffix of the text that is a proper prefix of a stop string.
    fn held_back(&self) -> usize {
        let mut longest = 0;
        for stop in &self.stops {
            for (len, _) in stop.char_indices().skip(1) {
                if len > longest && self.text.ends_with(&stop[..len]) {
                    longest = len;
                }
            }
        }
        longest.min(self.text.len() - self.written)
    }

    /// Where the text goes (a buffer the caller drains, for a server).
    pub fn out_mut(&mut self) -> &mut W {
        &mut self.out
    }

    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pieces: &[&str], stops: &[&str]) -> (String, bool, Vec<String>) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut stream = StopStream::new(Vec::new(), &stops);
        let mut seen = Vec::new();
        let mut stopped = false;
        for piece in pieces {
            stopped = stream.push(piece).unwrap();
            seen.push(String::from_utf8(stream.out.clone()).unwrap());
            if stopped {
                break;
            }
        }
        if !stopped {
            stream.finish().unwrap();
        }
        (
            String::from_utf8(stream.into_inner()).unwrap(),
            stopped,
            seen,
        )
    }

    #[test]
    fn stops_right_before_the_stop_string() {
        let (out, stopped, _) = run(&["To", " be", ",", "\n", "\n", "or"], &["\n\n"]);
        assert!(stopped);
        assert_eq!(out, "To be,");
    }

    #[test]
    fn holds_back_a_possible_prefix_then_releases_it() {
        let (out, stopped, seen) = run(&["a", "\n", "b", "c"], &["\n\n"]);
        assert!(!stopped);
        assert_eq!(out, "a\nbc");
        // After "a\n" the newline is held back: it might start "\n\n".
        assert_eq!(seen[1], "a");
        assert_eq!(seen[2], "a\nb");
    }

    #[test]
    fn earliest_of_several_stops_wins_and_no_stops_streams_everything() {
        let (out, stopped, _) = run(&["xxEND", "STOP"], &["STOP", "END"]);
        assert!(stopped);
        assert_eq!(out, "xx");
        let (out, stopped, seen) = run(&["a", "b"], &[]);
        assert!(!stopped);
        assert_eq!((out.as_str(), seen[0].as_str()), ("ab", "a"));
    }
}
