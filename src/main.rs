//! `tutti`: which orchestral instruments are playing.

fn main() -> std::process::ExitCode {
    tutti::cli::main()
}
