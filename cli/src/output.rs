//! What the commands print on stdout, without ever panicking: `println!` panics when stdout is a
//! closed pipe (`nymvisor status | head -1`); these return the error instead, and `main` treats
//! a broken pipe as the reader having seen enough.

use std::io::Write;

/// Writes `bytes` to stdout and flushes.
pub fn write_all(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// `print!` that returns an error instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_all(format!($($arg)*).as_bytes())?
    };
}

/// `println!` that returns an error instead of panicking.
macro_rules! outln {
    () => {
        $crate::output::write_all(b"\n")?
    };
    ($($arg:tt)*) => {{
        let mut line = format!($($arg)*);
        line.push('\n');
        $crate::output::write_all(line.as_bytes())?
    }};
}

pub(crate) use {out, outln};

/// Whether `e` (or what caused it) is a write to a closed pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
