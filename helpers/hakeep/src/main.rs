#![forbid(unsafe_code)]

fn main() {
    std::process::exit(hakeep::cli::main());
}
