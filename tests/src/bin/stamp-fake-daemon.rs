//! `stamp-fake-daemon DEST NAME VERSION [KEY=VALUE...]`: writes a copy of the fake daemon that
//! reports NAME and VERSION (for the demo and benchmark scripts).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: stamp-fake-daemon DEST NAME VERSION [KEY=VALUE...]");
        std::process::exit(2);
    }
    let extra: Vec<&str> = args[3..].iter().map(String::as_str).collect();
    let dest = nymvisor_tests::stamp_in_process(
        std::path::Path::new(&args[0]),
        &args[1],
        &args[2],
        &extra,
    );
    println!("{}", dest.display());
}
