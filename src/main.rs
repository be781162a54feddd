fn main() -> std::process::ExitCode {
    resetdesk::cli::main()
}
