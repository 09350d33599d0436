fn main() {
    for env in std::env::args().skip(1) {
        let path = deploy::spec::resolve(&env, std::path::Path::new("environments"));
        match deploy::spec::load(&path) {
            Ok(l) => match deploy::plan::desired::expand(&l) {
                Ok(d) => println!("{env}: ok, {} resources: {:?}", d.resources.len(), d.order),
                Err(e) => print!("{e}"),
            },
            Err(e) => print!("{e}"),
        }
    }
}
