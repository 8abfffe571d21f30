//! `hash_file ALGORITHM FILE`: hashes a file the way nymvisor hashes a download (256 KiB chunks
//! through the streaming hasher) and prints the hex digest. Used by `bench/download.sh` to compare
//! throughput with `sha256sum`.

use std::io::Read;

use nymvisor_verifiers::checksum::Algorithm;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(algo), Some(path)) = (args.first().and_then(|a| Algorithm::parse(a)), args.get(1))
    else {
        eprintln!("usage: hash_file sha256|sha512|sha3-256|sha3-512 FILE");
        return std::process::ExitCode::from(2);
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{path}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut hasher = algo.hasher();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) => {
                eprintln!("{path}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    println!("{}  {path}", hasher.finish_hex());
    std::process::ExitCode::SUCCESS
}
