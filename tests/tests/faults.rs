//! The fault-injection suite, CI-sized: every unit is sent exactly once, or is in a DLQ,
//! or failed with its reason in legacy hands. None is lost, none is sent twice.

use symphony_tests::faults::{FaultPlan, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_faults_nothing_is_lost_and_nothing_is_sent_twice() {
    let plan = FaultPlan::ci();
    let report = run(plan).await;
    eprintln!("{report}");

    assert_eq!(report.units, plan.units);
    assert_eq!(report.duplicates, 0, "{report}");
    assert_eq!(report.lost, 0, "{report}");
    assert_eq!(
        report.sent + report.dead_lettered + report.failed_with_reason,
        report.units
    );
    // The faults really happened: rejected recipients never got mail, and bad messages
    // all reached the DLQ
    assert!(report.dead_lettered + report.failed_with_reason >= plan.units / plan.permanent_every);
    assert_eq!(
        report.bad_messages_dead_lettered, report.bad_messages,
        "{report}"
    );
}
