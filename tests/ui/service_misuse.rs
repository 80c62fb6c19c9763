// What #[service] refuses, with a message saying why.

#[pyrpc_server::service]
trait NotAsync {
    fn greet(&self, name: String) -> String;
}

#[pyrpc_server::service]
trait Reserved {
    async fn nb_greet(&self, name: String) -> String;
}

#[pyrpc_server::service]
trait NoSelf {
    async fn greet(name: String) -> String;
}

#[pyrpc_server::service]
trait Borrowed {
    async fn greet(&self, name: &str) -> String;
}

fn main() {}
