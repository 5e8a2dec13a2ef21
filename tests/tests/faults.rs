//! The fault-injection suite, CI-sized, with an exact account: every unit of every job is
//! sent once, or failed with its own reason, or held as an unknown outcome with its dead
//! letter (delivered at most once); what was not sent is exactly what was doomed, poisoned
//! or held. None is lost, none is sent twice.
//!
//! The figures: `cargo test -p symphony-tests --test faults -- --nocapture` shows them.

use symphony_tests::faults::{FaultPlan, Job, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_faults_nothing_is_lost_and_nothing_is_sent_twice() {
    let plan = FaultPlan::ci();
    let report = Box::pin(run(plan)).await;
    eprintln!("{report}");

    assert_eq!(report.violations(), Vec::<String>::new(), "{report}");
    let total = report.total();
    // The plan's units; per wave, a poisoned email, enrollment, campaign and lead, and an
    // email and an enrollment claimed by a tick that died; per deadline wave, two late
    // emails
    let deadline_waves = waves(&plan).div_ceil(plan.deadline_cut_every);
    assert_eq!(
        total.units,
        plan.units
            + 4 * plan.poison_per_wave * waves(&plan)
            + 2 * waves(&plan)
            + 2 * deadline_waves,
        "{report}"
    );
    // Each injected fault really happened
    for job in Job::ALL {
        let outcome = report.job(job);
        assert!(
            outcome.doomed > 0,
            "{}: no doomed unit: {report}",
            job.name()
        );
        assert!(
            outcome.unsure > 0,
            "{}: no unsure unit: {report}",
            job.name()
        );
    }
    assert!(report.job(Job::Email).poisoned > 0, "{report}");
    assert!(report.job(Job::Sms).poisoned > 0, "{report}");
    assert!(report.job(Job::Campaign).poisoned > 0, "{report}");
    // and a tick and a worker ran against a real deadline, every one answering before it,
    // each tick's late send cut mid-send by it (both checked by `violations`)
    assert_eq!(report.deadline_runs, 2 * deadline_waves, "{report}");
    // and the email and SMS ticks used both routes (the flag moved under them; the
    // campaign ticks have one campaign a wave, so either route may take them all), claims
    // left by a dead tick were taken over by later ticks, and a kill caught a send mid-way
    for job in [Job::Email, Job::Sms] {
        let ticks = report.job(job).ticks;
        assert!(
            ticks.dispatched > 0 && ticks.legacy > 0,
            "{}: one route only: {report}",
            job.name()
        );
    }
    for job in [Job::Email, Job::Sms] {
        // at least the claims seeded as left by a dead tick, one per wave
        assert!(
            report.job(job).ticks.taken_over >= waves(&plan),
            "{}: too few takeovers: {report}",
            job.name()
        );
    }
    assert!(
        report.total().killed_mid_send > 0,
        "no kill mid-send: {report}"
    );
    // and the email queue's refused sends released their units, sent later
    assert!(report.job(Job::Email).infrastructure_faults > 0, "{report}");
    // and deferred mail and throttled texts came back for another attempt
    assert!(report.job(Job::Email).retried_deliveries > 0, "{report}");
    assert!(report.job(Job::Sms).retried_deliveries > 0, "{report}");
}

/// How many waves the plan seeds (each with its poisoned rows).
fn waves(plan: &FaultPlan) -> usize {
    Job::ALL
        .iter()
        .map(|job| plan.units_of(*job).div_ceil(plan.wave))
        .max()
        .unwrap_or(0)
}
