//! The Rust gRPC peer: a tonic unary echo of a 32-byte body.
//!
//! ```text
//! bench-tonic serve ADDR
//! bench-tonic echo ADDR [--secs S] [--max N] [--warmup N]
//! ```

use anyhow::{bail, Result};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use pyrpc_bench::echo_proto::echo_client::EchoClient;
use pyrpc_bench::echo_proto::echo_server::{Echo, EchoServer};
use pyrpc_bench::echo_proto::{EchoReply, EchoRequest};
use pyrpc_bench::{client_runtime, Addr, Opts, Report};
use tonic::transport::{Channel, Endpoint, Server, Uri};
use tonic::{Request, Response, Status};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (verb, addr) = match args.as_slice() {
        [verb, addr, ..] => (verb.as_str(), Addr::parse(addr)?),
        _ => bail!("usage: bench-tonic serve|echo ADDR [--opts]"),
    };
    let opts = Opts::parse(&args[2..])?;
    match verb {
        "serve" => tokio::runtime::Runtime::new()?.block_on(serve(addr)),
        "echo" => client_runtime()?.block_on(echo(addr, opts)),
        other => bail!("unknown verb `{other}`"),
    }
}

struct Svc;

#[tonic::async_trait]
impl Echo for Svc {
    async fn echo(&self, req: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        Ok(Response::new(EchoReply {
            body: req.into_inner().body,
        }))
    }
}

async fn serve(addr: Addr) -> Result<()> {
    let svc = EchoServer::new(Svc);
    match addr {
        Addr::Tcp(a) => {
            Server::builder()
                .tcp_nodelay(true)
                .add_service(svc)
                .serve(a.parse()?)
                .await?
        }
        Addr::Unix(p) => {
            let _ = std::fs::remove_file(&p);
            let l = tokio::net::UnixListener::bind(&p)?;
            Server::builder()
                .add_service(svc)
                .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(l))
                .await?
        }
    }
    Ok(())
}

async fn channel(addr: &Addr) -> Result<Channel> {
    Ok(match addr {
        Addr::Tcp(a) => {
            Endpoint::from_shared(format!("http://{a}"))?
                .tcp_nodelay(true)
                .connect()
                .await?
        }
        Addr::Unix(p) => {
            let p = p.clone();
            // The URI is ignored: the connector dials the socket.
            Endpoint::try_from("http://[::]:50051")?
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let p = p.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(
                            tokio::net::UnixStream::connect(p).await?,
                        ))
                    }
                }))
                .await?
        }
    })
}

async fn echo(addr: Addr, opts: Opts) -> Result<()> {
    let budget = opts.budget()?;
    let mut report = Report::new("tonic-echo");
    let client = EchoClient::new(channel(&addr).await?);
    let body = Bytes::from_static(&[7u8; 32]);
    let result = pyrpc_bench::sequential(budget, || {
        let mut c = client.clone();
        let body = body.clone();
        async move {
            let reply = c.echo(EchoRequest { body: body.clone() }).await?;
            if reply.into_inner().body != body {
                bail!("echo differs");
            }
            Ok(())
        }
    })
    .await;
    match result {
        Ok((mut lat, secs)) => report.rate(&mut lat, secs),
        Err(e) => report.fail(&format!("{e:#}")),
    };
    report.print();
    Ok(())
}
