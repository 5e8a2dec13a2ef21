//! The fault-injection suite, CI-sized: every unit of every job is sent exactly once, or is
//! in a DLQ, or failed with its reason. None is lost, none is sent twice.

use symphony_tests::faults::{FaultPlan, Job, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_faults_nothing_is_lost_and_nothing_is_sent_twice() {
    let plan = FaultPlan::ci();
    let report = Box::pin(run(plan)).await;
    eprintln!("{report}");

    let total = report.total();
    assert_eq!(total.units, plan.units, "{report}");
    for job in Job::ALL {
        let outcome = report.job(job);
        assert_eq!(outcome.units, plan.units_of(job), "{report}");
        assert_eq!(outcome.duplicates, 0, "{}: {report}", job.name());
        assert_eq!(outcome.lost, 0, "{}: {report}", job.name());
        assert_eq!(
            outcome.sent + outcome.dead_lettered + outcome.failed_with_reason,
            outcome.units,
            "{report}"
        );
        // The faults really happened: rejected recipients and invalid numbers were never
        // sent to
        assert!(
            outcome.dead_lettered + outcome.failed_with_reason
                >= plan.units_of(job) / plan.permanent_every,
            "{}: {report}",
            job.name()
        );
    }
    // and deferred mail and throttled texts came back for another attempt
    assert!(report.job(Job::Email).retried_deliveries > 0, "{report}");
    assert!(report.job(Job::Sms).retried_deliveries > 0, "{report}");
    // and every bad message put on a queue reached a dead-letter queue
    assert_eq!(
        report.bad_messages_dead_lettered, report.bad_messages,
        "{report}"
    );
}
