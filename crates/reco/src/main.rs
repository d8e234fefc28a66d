//! `reco`: the binary is thin glue. Each subcommand parses its options, builds the stage
//! crates' components and runs them until a shutdown signal; all logic lives in the crates.

mod cli;
mod commands;
mod memory;
mod shutdown;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, TopicsCommand};

#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    reco_telemetry::set_heap_probe(memory::heap_stats);
    let started = std::time::Instant::now();
    let cli = Cli::parse();
    reco_telemetry::init_tracing();
    if matches!(cli.command, Command::Up(_) | Command::Broker(_)) {
        exit_on_panic();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        if let Some(kafka) = cli.command.kafka() {
            kafka.apply()?;
            // `status` reports a broker it cannot reach rather than refusing to run.
            if !matches!(cli.command, Command::Status(_)) {
                reco_kafka::check_security(&kafka.kafka_bootstrap_servers).await?;
            }
        }
        match cli.command {
            Command::Up(args) => commands::up::run(args, started).await,
            Command::Broker(args) => commands::broker::run(args, started).await,
            Command::Serve(args) => commands::serve::run(args).await,
            Command::Silver(args) => commands::silver::run(args).await,
            Command::Gold(args) => commands::gold::run(args).await,
            Command::Status(args) => commands::status::run(args).await,
            Command::Gen(args) => commands::traffic::gen_traffic(args).await,
            Command::Replay(args) => commands::traffic::replay(args).await,
            Command::Topics { command: TopicsCommand::Init(args) } => commands::topics::init(args).await,
        }
    });
    // librdkafka and tansu may leave background threads; do not wait for them.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Makes any panic end the process (exit code 101) in the commands that host the embedded
/// broker. tansu runs its storage as one task behind a channel; a panic there left a process
/// that accepted connections and answered every request with an error until someone restarted
/// it (found by the chaos scenario). Exiting hands the restart to the supervisor at once, and
/// the SQLite log is crash-safe.
fn exit_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        eprintln!("error: reco stops after a panic, so that its supervisor restarts it");
        std::process::exit(101);
    }));
}
