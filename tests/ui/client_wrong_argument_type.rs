// A typed client called with an argument of the wrong type does not compile.

#[pyrpc_server::service]
trait Greeter {
    async fn greet(&self, name: String) -> String;
}

async fn call(c: GreeterClient) -> Result<String, pyrpc_client::CallError> {
    c.greet(42).await
}

fn main() {
    let _ = call;
}
