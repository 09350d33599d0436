fn main() {
    for env in std::env::args().skip(1) {
        let path = deploy::spec::resolve(&env, std::path::Path::new("environments"));
        match deploy::plan::load_desired(&path) {
            Ok((_, d)) => println!("{env}: ok, {} resources", d.resources.len()),
            Err(e) => print!("{e}"),
        }
    }
}
