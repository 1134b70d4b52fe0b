fn main() -> std::process::ExitCode {
    app::main()
}
