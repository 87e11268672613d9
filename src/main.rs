use std::process::ExitCode;

fn main() -> ExitCode {
    promptloop::cli::main()
}
