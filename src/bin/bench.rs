fn main() {
    eprintln!("bench: not built yet");
}
