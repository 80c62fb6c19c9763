// A server implementing a method with another argument type does not compile.

#[pyrpc_server::service]
trait Greeter {
    async fn greet(&self, name: String) -> String;
}

struct Mine;

impl Greeter for Mine {
    async fn greet(&self, name: i64) -> String {
        name.to_string()
    }
}

fn main() {
    let _ = GreeterServer::new(Mine);
}
