//! Running the session server inside your own program, like the original's
//! `SessionServer.Create(7000)`. The README shows this file.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let server = sessionserver::start(sessionserver::Config {
        port: 0, // any free port; use 7000 to match the original
        ..Default::default()
    })
    .await?;
    println!(
        "[SessionServer] Listening on port {}",
        server.local_addr().port()
    );

    // ... run your game; the server serves clients on its own tasks ...

    server.shutdown().await; // closes every socket with 1001 and waits for them
    Ok(())
}
