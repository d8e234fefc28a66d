//! A TCP proxy in front of a broker, for network faults: every client connects through it (the
//! broker advertises the proxy's address), and a test cuts all connections, stalls them (bytes
//! wait, sockets stay open, as with a dropped route) or slows them (a delay before each chunk).
//! Real sockets and real client timeouts, unlike a mocked transport.

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

/// What the proxy does to bytes right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Healthy,
    /// Bytes are held until the link is healthy again; new connections wait too.
    Stalled,
    /// Each chunk is delayed by this long.
    Slow(Duration),
}

/// A running proxy; stops (and drops its connections) on drop.
#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    link: watch::Sender<Link>,
    /// Bumped by [`Proxy::cut`]; each connection ends when it changes.
    generation: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on `listen` and forwards each connection to `upstream`.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> Proxy {
        let listener =
            TcpListener::bind(listen).await.unwrap_or_else(|e| panic!("proxy cannot listen on {listen}: {e}"));
        let addr = listener.local_addr().expect("proxy address");
        let (link, _) = watch::channel(Link::Healthy);
        let (generation, _) = watch::channel(0);
        let (link_rx, cut_rx) = (link.subscribe(), generation.subscribe());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (link, cut) = (link_rx.clone(), cut_rx.clone());
                tokio::spawn(async move {
                    let _ = connection(client, upstream, link, cut).await;
                });
            }
        });
        Proxy { addr, link, generation, task }
    }

    /// Closes every open connection at once (clients see a reset and reconnect).
    pub fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    mut link: watch::Receiver<Link>,
    mut cut: watch::Receiver<u64>,
) -> std::io::Result<()> {
    cut.mark_unchanged();
    wait_healthy_enough(&mut link).await;
    let server = tokio::select! {
        s = TcpStream::connect(upstream) => s?,
        _ = cut.changed() => return Ok(()),
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, link.clone());
    let down = pump(server_read, client_write, link);
    // Either direction ending (or a cut) ends both: the sockets drop and the peers see it.
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = cut.changed() => {}
    }
    Ok(())
}

async fn wait_healthy_enough(link: &mut watch::Receiver<Link>) {
    let _ = link.wait_for(|l| *l != Link::Stalled).await;
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut link: watch::Receiver<Link>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        wait_healthy_enough(&mut link).await;
        let state = *link.borrow();
        if let Link::Slow(delay) = state {
            tokio::time::sleep(delay).await;
        }
        to.write_all(&buf[..n]).await?;
    }
}
