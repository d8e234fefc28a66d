//! `reco topics init`.

use std::process::ExitCode;

use anyhow::Context;
use reco_kafka::topics::{Outcome, TopicReport, TopicSpec, ensure_topics};

use crate::cli::TopicsInitArgs;

pub async fn init(args: TopicsInitArgs) -> anyhow::Result<ExitCode> {
    let bootstrap = &args.kafka.kafka_bootstrap_servers;
    let reports = ensure_topics(bootstrap, &args.topics.specs(), args.fix)
        .await
        .with_context(|| format!("topic setup against {bootstrap} failed"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print_reports(&reports);
    }
    // Drift left in place is worth a non-zero exit, so scripts notice; everything else is fine.
    let drifted = reports.iter().any(|r| r.outcome == Outcome::Drifted);
    Ok(if drifted { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Runs topic setup for `reco up` and logs the outcome.
pub async fn ensure_and_log(bootstrap: &str, specs: &[TopicSpec]) -> anyhow::Result<()> {
    let reports = ensure_topics(bootstrap, specs, false).await.context("topic setup failed")?;
    for r in &reports {
        match r.outcome {
            Outcome::Created => tracing::info!(topic = %r.topic, "created topic"),
            Outcome::Unchanged | Outcome::Fixed => {}
            Outcome::Drifted => {
                for d in &r.drifts {
                    tracing::warn!(topic = %r.topic, setting = %d.setting, expected = %d.expected,
                        actual = %d.actual, "topic config drifted; run `reco topics init --fix`");
                }
            }
        }
    }
    Ok(())
}

pub fn print_reports(reports: &[TopicReport]) {
    println!("{:<16} {:<10} details", "topic", "outcome");
    for r in reports {
        let outcome = match r.outcome {
            Outcome::Created => "created",
            Outcome::Unchanged => "ok",
            Outcome::Drifted => "DRIFTED",
            Outcome::Fixed => "fixed",
        };
        let details: Vec<String> = r
            .drifts
            .iter()
            .map(|d| {
                let state = if d.fixed { "fixed".to_owned() } else { d.note.clone().unwrap_or_default() };
                format!("{}: expected {}, found {} ({state})", d.setting, d.expected, d.actual)
            })
            .collect();
        println!("{:<16} {:<10} {}", r.topic, outcome, details.join("; "));
    }
}
