//! The contract every [`Ledger`] keeps, as one suite: the in-memory ledger runs it in
//! core's unit tests, the DynamoDB ledger against moto in the integration tests, for each
//! job's records. It uses times near epoch second 1,000,000, so rows of other tests in a
//! shared table are never due in it, and ids under its own prefix.

use super::{Ending, Ledger, LedgerRecord, Next, Transition, UnitState, Verdict};
use crate::Route;

const T0: i64 = 1_000_000;

/// Runs the whole contract. `ready(unit_id, step, due_at)` makes a ready unit of the job;
/// `prefix` keeps the suite's ids apart from other tests'.
pub async fn check<R: LedgerRecord + std::fmt::Debug + PartialEq>(
    ledger: &dyn Ledger<R>,
    ready: impl Fn(&str, usize, i64) -> R,
    prefix: &str,
) {
    let id = |name: &str| format!("{prefix}-{name}");
    creates_once(ledger, &ready(&id("create"), 0, T0)).await;
    one_delivery_sends(ledger, &ready(&id("send"), 0, T0)).await;
    a_sending_unit_is_out_of_reach(ledger, &ready(&id("sending"), 0, T0)).await;
    releases_only_under_its_own_claim(ledger, &ready(&id("release"), 0, T0 - 50)).await;
    defers_to_a_later_due_time(ledger, &ready(&id("defer"), 0, T0)).await;
    holds_only_what_is_sending(ledger, &ready(&id("hold"), 0, T0)).await;
    fails_only_what_is_owned(ledger, &ready(&id("fail"), 0, T0)).await;
    resolves_held_units_as_a_person_decides(
        ledger,
        &ready(&id("resend"), 0, T0),
        &ready(&id("went-out"), 0, T0),
    )
    .await;
    takes_over_only_abandoned_claims(ledger, &ready(&id("abandoned"), 0, T0 - 40)).await;
    closes_without_sending(
        ledger,
        &ready(&id("close"), 0, T0),
        &ready(&id("stop"), 0, T0),
    )
    .await;
    fetches_what_is_due_oldest_first(ledger, &ready, &id("due")).await;
    if R::HAS_STEPS {
        moves_through_steps(ledger, &ready(&id("steps"), 0, T0)).await;
    }
}

fn state_of<R: LedgerRecord>(record: &Option<R>) -> Option<UnitState> {
    record.as_ref().map(|record| record.progress().state)
}

async fn read<R: LedgerRecord>(ledger: &dyn Ledger<R>, unit_id: &str) -> Option<R> {
    ledger.get(unit_id).await.expect("the ledger reads")
}

async fn created<R: LedgerRecord>(ledger: &dyn Ledger<R>, record: &R) {
    let created = ledger.create(record).await.expect("the ledger writes");
    assert_eq!(created, Transition::Done, "a new {} is created", R::KIND);
}

async fn claimed<R: LedgerRecord>(ledger: &dyn Ledger<R>, unit_id: &str, now: i64) -> crate::Claim {
    ledger
        .claim(unit_id, 0, Route::Symphony, now)
        .await
        .expect("the ledger writes")
        .expect("a ready unit is claimed")
}

async fn creates_once<R: LedgerRecord + std::fmt::Debug + PartialEq>(
    ledger: &dyn Ledger<R>,
    record: &R,
) {
    created(ledger, record).await;
    assert_eq!(read(ledger, record.unit_id()).await.as_ref(), Some(record));
    let again = ledger.create(record).await.expect("the ledger writes");
    assert_eq!(
        again,
        Transition::Conflict,
        "an existing id is not overwritten"
    );
    assert_eq!(read(ledger, "no-such-unit-anywhere").await, None);
}

async fn one_delivery_sends<R: LedgerRecord>(ledger: &dyn Ledger<R>, record: &R) {
    let unit = record.unit_id();
    created(ledger, record).await;
    let claim = claimed(ledger, unit, T0).await;
    assert_eq!(claim.route, Route::Symphony);
    let second = ledger
        .claim(unit, 0, Route::Legacy, T0)
        .await
        .expect("writes");
    assert_eq!(second, None, "a claimed unit is not claimed twice");
    let progress = read(ledger, unit).await.expect("exists").progress();
    assert_eq!(progress.state, UnitState::Claimed);
    assert_eq!(progress.claimed_by, Some(Route::Symphony));

    let begin = |now| ledger.begin_send(unit, 0, now);
    assert_eq!(begin(T0).await.expect("writes"), Transition::Done);
    assert_eq!(
        begin(T0).await.expect("writes"),
        Transition::Conflict,
        "only one delivery is sending"
    );
    assert_eq!(
        ledger.abort_send(unit).await.expect("writes"),
        Transition::Done
    );
    assert_eq!(
        ledger.abort_send(unit).await.expect("writes"),
        Transition::Conflict,
        "only a sending unit is put back"
    );
    assert_eq!(
        state_of(&read(ledger, unit).await),
        Some(UnitState::Claimed)
    );
    assert_eq!(begin(T0 + 1).await.expect("writes"), Transition::Done);
    if !R::HAS_STEPS {
        let later = Next::Step {
            index: 1,
            due_at: T0,
        };
        let again = ledger.finish(unit, 0, later, T0 + 2).await;
        assert_eq!(
            again.expect("writes"),
            Transition::Conflict,
            "a unit sent once is never made ready to send again"
        );
    }
    let finish = ledger.finish(unit, 0, Next::Done, T0 + 2);
    assert_eq!(finish.await.expect("writes"), Transition::Done);
    let progress = read(ledger, unit).await.expect("exists").progress();
    assert_eq!(progress.state, UnitState::Done);
    assert_eq!(
        progress.claimed_by,
        Some(Route::Symphony),
        "the path that sent it is kept"
    );
    let again = ledger.finish(unit, 0, Next::Done, T0 + 3).await;
    assert_eq!(again.expect("writes"), Transition::Conflict);
    assert_eq!(begin(T0 + 3).await.expect("writes"), Transition::Conflict);
}

async fn a_sending_unit_is_out_of_reach<R: LedgerRecord>(ledger: &dyn Ledger<R>, record: &R) {
    let unit = record.unit_id();
    created(ledger, record).await;
    let claim = claimed(ledger, unit, T0).await;
    assert_eq!(
        ledger.begin_send(unit, 0, T0).await.expect("writes"),
        Transition::Done
    );
    let later = T0 + 100;
    assert_eq!(
        ledger.release(&claim).await.expect("writes"),
        Transition::Conflict
    );
    assert_eq!(
        ledger.defer(unit, later).await.expect("writes"),
        Transition::Conflict
    );
    for ending in [Ending::Done, Ending::Stopped] {
        let close = ledger.close(unit, 0, ending, later).await;
        assert_eq!(close.expect("writes"), Transition::Conflict, "{ending:?}");
    }
    let taken = ledger.reclaim(unit, Route::Legacy, later, later).await;
    assert_eq!(
        taken.expect("writes"),
        None,
        "a sending unit is never taken over"
    );
    let claim = ledger.claim(unit, 0, Route::Legacy, later).await;
    assert_eq!(claim.expect("writes"), None);
    let abandoned = ledger
        .fetch_abandoned(later, 1_000, later)
        .await
        .expect("reads");
    let due = ledger.fetch_due(later, 1_000).await.expect("reads");
    for found in abandoned.units.iter().chain(&due.units) {
        assert_ne!(found.unit_id(), unit, "a sending unit is never fetched");
    }
    assert_eq!(
        state_of(&read(ledger, unit).await),
        Some(UnitState::Sending)
    );
    let finish = ledger.finish(unit, 0, Next::Done, later).await;
    assert_eq!(finish.expect("writes"), Transition::Done);
    for moved in [
        ledger.fail(unit, "late", later).await,
        ledger.hold_unknown(unit, "late", later).await,
        ledger.abort_send(unit).await,
    ] {
        assert_eq!(
            moved.expect("writes"),
            Transition::Conflict,
            "a done unit stays done"
        );
    }
}

async fn releases_only_under_its_own_claim<R: LedgerRecord>(ledger: &dyn Ledger<R>, record: &R) {
    let unit = record.unit_id();
    created(ledger, record).await;
    let claim = claimed(ledger, unit, T0).await;
    let stale = crate::Claim {
        token: "another-token".into(),
        ..claim.clone()
    };
    assert_eq!(
        ledger.release(&stale).await.expect("writes"),
        Transition::Conflict
    );
    assert_eq!(
        ledger.release(&claim).await.expect("writes"),
        Transition::Done
    );
    let progress = read(ledger, unit).await.expect("exists").progress();
    assert_eq!(progress.state, UnitState::Ready);
    assert_eq!(
        progress.due_at,
        T0 - 50,
        "a released unit is as due as it was"
    );
    assert_eq!(progress.claimed_by, None, "a released unit is no one's");
    assert_eq!(
        ledger.release(&claim).await.expect("writes"),
        Transition::Conflict,
        "a claim is released once"
    );
}

async fn defers_to_a_later_due_time<R: LedgerRecord>(ledger: &dyn Ledger<R>, record: &R) {
    let unit = record.unit_id();
    created(ledger, record).await;
    assert_eq!(
        ledger.defer(unit, T0 + 500).await.expect("writes"),
        Transition::Conflict,
        "only a claimed unit is deferred"
    );
    claimed(ledger, unit, T0).await;
    assert_eq!(
        ledger.defer(unit, T0 + 500).await.expect("writes"),
        Transition::Done
    );
    let progress = read(ledger, unit).await.expect("exists").progress();
    assert_eq!(
        (progress.state, progress.due_at),
        (UnitState::Ready, T0 + 500)
    );
    let due = ledger.fetch_due(T0 + 499, 1_000).await.expect("reads");
    assert!(
        due.units.iter().all(|due| due.unit_id() != unit),
        "a deferred unit is not due before its time"
    );
    let due = ledger.fetch_due(T0 + 500, 1_000).await.expect("reads");
    assert!(
        due.units.iter().any(|due| due.unit_id() == unit),
        "a deferred unit is due at its time"
    );
}

async fn held<R: LedgerRecord>(ledger: &dyn Ledger<R>, unit_id: &str) -> Option<usize> {
    let held = ledger.held(1_000).await.expect("lists held units");
    held.iter()
        .find(|record| record.unit_id() == unit_id)
        .map(|record| record.progress().step)
}

async fn resolves_held_units_as_a_person_decides<R: LedgerRecord>(
    ledger: &dyn Ledger<R>,
    resend: &R,
    went_out: &R,
) {
    for record in [resend, went_out] {
        let unit = record.unit_id();
        created(ledger, record).await;
        assert_eq!(
            ledger
                .resolve(unit, 0, Verdict::Resend, T0)
                .await
                .expect("writes"),
            Transition::Conflict,
            "only a held unit is resolved"
        );
        claimed(ledger, unit, T0).await;
        assert_eq!(
            ledger.begin_send(unit, 0, T0).await.expect("writes"),
            Transition::Done
        );
        let hold = ledger.hold_unknown(unit, "no verdict after the data", T0);
        assert_eq!(hold.await.expect("writes"), Transition::Done);
        assert_eq!(
            held(ledger, unit).await,
            Some(0),
            "{unit} is listed as held"
        );
    }
    if R::HAS_STEPS {
        let wrong_step = ledger.resolve(resend.unit_id(), 1, Verdict::Resend, T0);
        assert_eq!(wrong_step.await.expect("writes"), Transition::Conflict);
    }
    let unit = resend.unit_id();
    let later = T0 + 600;
    assert_eq!(
        ledger
            .resolve(unit, 0, Verdict::Resend, later)
            .await
            .expect("writes"),
        Transition::Done
    );
    let progress = read(ledger, unit).await.expect("exists").progress();
    assert_eq!(
        (progress.state, progress.step, progress.due_at),
        (UnitState::Ready, 0, later),
        "to be resent it is ready at its step, due at once"
    );
    assert_eq!(held(ledger, unit).await, None);
    assert_eq!(
        ledger
            .resolve(unit, 0, Verdict::Resend, later)
            .await
            .expect("writes"),
        Transition::Conflict,
        "resolved once"
    );
    assert!(
        ledger
            .claim(unit, 0, Route::Symphony, later)
            .await
            .expect("writes")
            .is_some(),
        "a unit to resend is claimed as any ready one"
    );

    let unit = went_out.unit_id();
    if R::HAS_STEPS {
        // It went out: the drip moves on to its next step, as a send would have moved it
        let next = Next::Step {
            index: 1,
            due_at: later + 3_600,
        };
        let sent = ledger.resolve(unit, 0, Verdict::Sent(next), later);
        assert_eq!(sent.await.expect("writes"), Transition::Done);
        let progress = read(ledger, unit).await.expect("exists").progress();
        assert_eq!(
            (progress.state, progress.step, progress.due_at),
            (UnitState::Ready, 1, later + 3_600)
        );
        assert_eq!(held(ledger, unit).await, None);
        assert_eq!(
            ledger
                .claim(unit, 0, Route::Legacy, later + 3_600)
                .await
                .expect("writes"),
            None,
            "the step that went out is never sent again"
        );
        return;
    }
    let sent = ledger.resolve(unit, 0, Verdict::Sent(Next::Done), later);
    assert_eq!(sent.await.expect("writes"), Transition::Done);
    let progress = read(ledger, unit).await.expect("exists").progress();
    assert_eq!(progress.state, UnitState::Done);
    assert_eq!(held(ledger, unit).await, None);
    assert_eq!(
        ledger
            .claim(unit, progress.step, Route::Legacy, later)
            .await
            .expect("writes"),
        None,
        "a unit that went out is never sent again"
    );
}

async fn holds_only_what_is_sending<R: LedgerRecord>(ledger: &dyn Ledger<R>, record: &R) {
    let unit = record.unit_id();
    created(ledger, record).await;
    claimed(ledger, unit, T0).await;
    let hold = ledger.hold_unknown(unit, "no verdict after the data", T0);
    assert_eq!(hold.await.expect("writes"), Transition::Conflict);
    assert_eq!(
        ledger.begin_send(unit, 0, T0).await.expect("writes"),
        Transition::Done
    );
    let hold = ledger.hold_unknown(unit, "no verdict after the data", T0);
    assert_eq!(hold.await.expect("writes"), Transition::Done);
    let progress = read(ledger, unit).await.expect("exists").progress();
    assert_eq!(progress.state, UnitState::Unknown);
    assert_eq!(
        progress.last_error.as_deref(),
        Some("no verdict after the data")
    );
    for moved in [
        ledger.abort_send(unit).await,
        ledger.finish(unit, 0, Next::Done, T0).await,
        ledger.fail(unit, "given up", T0).await,
    ] {
        assert_eq!(
            moved.expect("writes"),
            Transition::Conflict,
            "a held unit stays held"
        );
    }
    assert_eq!(
        ledger
            .claim(unit, 0, Route::Legacy, T0)
            .await
            .expect("writes"),
        None
    );
}

async fn fails_only_what_is_owned<R: LedgerRecord>(ledger: &dyn Ledger<R>, record: &R) {
    let unit = record.unit_id();
    created(ledger, record).await;
    assert_eq!(
        ledger.fail(unit, "bad", T0).await.expect("writes"),
        Transition::Conflict,
        "a ready unit nobody holds is not failed"
    );
    claimed(ledger, unit, T0).await;
    let long_reason = "x".repeat(5_000);
    assert_eq!(
        ledger.fail(unit, &long_reason, T0).await.expect("writes"),
        Transition::Done
    );
    let progress = read(ledger, unit).await.expect("exists").progress();
    assert_eq!(progress.state, UnitState::Failed);
    let kept = progress.last_error.unwrap_or_default().len();
    assert!(
        (1..=super::MAX_REASON_BYTES).contains(&kept),
        "the reason is kept, bounded: {kept}"
    );
}

async fn takes_over_only_abandoned_claims<R: LedgerRecord>(ledger: &dyn Ledger<R>, record: &R) {
    let unit = record.unit_id();
    created(ledger, record).await;
    let first = claimed(ledger, unit, T0).await;
    let live = ledger.reclaim(unit, Route::Legacy, T0 + 10, T0 - 1).await;
    assert_eq!(
        live.expect("writes"),
        None,
        "a live claim is never taken over"
    );
    let abandoned = ledger
        .fetch_abandoned(T0, 1_000, T0 + 10)
        .await
        .expect("reads");
    assert!(abandoned.units.iter().any(|found| found.unit_id() == unit));
    let fresh = ledger
        .fetch_abandoned(T0 - 1, 1_000, T0 + 10)
        .await
        .expect("reads");
    assert!(fresh.units.iter().all(|found| found.unit_id() != unit));
    let taken = ledger
        .reclaim(unit, Route::Legacy, T0 + 10, T0)
        .await
        .expect("writes")
        .expect("an abandoned claim is taken over");
    assert_eq!(taken.route, Route::Legacy);
    assert_ne!(taken.token, first.token);
    assert_eq!(
        ledger.release(&first).await.expect("writes"),
        Transition::Conflict,
        "the first owner's claim is gone"
    );
    let again = ledger.reclaim(unit, Route::Symphony, T0 + 20, T0).await;
    assert_eq!(
        again.expect("writes"),
        None,
        "a claim renewed by a takeover is live"
    );
    let progress = read(ledger, unit).await.expect("exists").progress();
    assert_eq!(progress.claimed_by, Some(Route::Legacy));
}

async fn closes_without_sending<R: LedgerRecord>(ledger: &dyn Ledger<R>, done: &R, stopped: &R) {
    created(ledger, done).await;
    let close = ledger.close(done.unit_id(), 0, Ending::Done, T0);
    assert_eq!(
        close.await.expect("writes"),
        Transition::Conflict,
        "only a claimed unit closes"
    );
    claimed(ledger, done.unit_id(), T0).await;
    let close = ledger.close(done.unit_id(), 0, Ending::Done, T0).await;
    let after = read(ledger, done.unit_id())
        .await
        .expect("exists")
        .progress();
    if R::HAS_STEPS {
        assert_eq!(close.expect("writes"), Transition::Done);
        assert_eq!(after.state, UnitState::Done);
        assert_eq!(
            after.claimed_by,
            Some(Route::Symphony),
            "the path that closed it is kept"
        );
    } else {
        // Only its send makes a unit sent once done.
        assert_eq!(close.expect("writes"), Transition::Conflict);
        assert_eq!(after.state, UnitState::Claimed);
    }

    created(ledger, stopped).await;
    claimed(ledger, stopped.unit_id(), T0).await;
    let stop = ledger
        .close(stopped.unit_id(), 0, Ending::Stopped, T0)
        .await;
    let after = state_of(&read(ledger, stopped.unit_id()).await);
    if R::STATUS.stopped.is_some() {
        assert_eq!(stop.expect("writes"), Transition::Done);
        assert_eq!(after, Some(UnitState::Stopped));
    } else {
        assert_eq!(
            stop.expect("writes"),
            Transition::Conflict,
            "this job has no stop"
        );
        assert_eq!(after, Some(UnitState::Claimed));
    }
}

async fn fetches_what_is_due_oldest_first<R: LedgerRecord>(
    ledger: &dyn Ledger<R>,
    ready: &impl Fn(&str, usize, i64) -> R,
    prefix: &str,
) {
    let ids: Vec<String> = (0..4).map(|n| format!("{prefix}-{n}")).collect();
    // Due at T0-10, T0-30, T0-20, and one not due until T0+100.
    for (id, due_at) in ids.iter().zip([T0 - 10, T0 - 30, T0 - 20, T0 + 100]) {
        created(ledger, &ready(id, 0, due_at)).await;
    }
    let ours = |due: Vec<R>| -> Vec<String> {
        due.iter()
            .map(|unit| unit.unit_id().to_owned())
            .filter(|id| id.starts_with(prefix))
            .collect()
    };
    let due = ledger.fetch_due(T0, 1_000).await.expect("reads");
    let expected = [ids[1].clone(), ids[2].clone(), ids[0].clone()];
    assert_eq!(ours(due.units), expected, "oldest first, none early");
    claimed(ledger, &ids[1], T0).await;
    let due = ledger.fetch_due(T0, 1_000).await.expect("reads");
    let expected = [ids[2].clone(), ids[0].clone()];
    assert_eq!(ours(due.units), expected, "a claimed unit is not due");
    let all = ledger.fetch_due(T0 - 15, 1_000).await.expect("reads");
    let capped = ledger.fetch_due(T0 - 15, 1).await.expect("reads");
    let ids = |due: &[R]| {
        due.iter()
            .map(|unit| unit.unit_id().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&capped.units),
        ids(&all.units[..1]),
        "the limit keeps the oldest"
    );
}

async fn moves_through_steps<R: LedgerRecord>(ledger: &dyn Ledger<R>, record: &R) {
    let unit = record.unit_id();
    created(ledger, record).await;
    let wrong_step = ledger.claim(unit, 1, Route::Symphony, T0).await;
    assert_eq!(
        wrong_step.expect("writes"),
        None,
        "a claim names the step it is for"
    );
    claimed(ledger, unit, T0).await;
    let wrong_step = ledger.begin_send(unit, 1, T0).await;
    assert_eq!(wrong_step.expect("writes"), Transition::Conflict);
    assert_eq!(
        ledger.begin_send(unit, 0, T0).await.expect("writes"),
        Transition::Done
    );
    let wrong_step = ledger.finish(unit, 1, Next::Done, T0).await;
    assert_eq!(wrong_step.expect("writes"), Transition::Conflict);
    let next = Next::Step {
        index: 1,
        due_at: T0 + 3_600,
    };
    assert_eq!(
        ledger.finish(unit, 0, next, T0).await.expect("writes"),
        Transition::Done
    );
    let progress = read(ledger, unit).await.expect("exists").progress();
    assert_eq!(
        (progress.state, progress.step, progress.due_at),
        (UnitState::Ready, 1, T0 + 3_600)
    );
    let old_step = ledger.claim(unit, 0, Route::Symphony, T0 + 3_600).await;
    assert_eq!(
        old_step.expect("writes"),
        None,
        "a step once sent is not claimed again"
    );
    let claim = ledger.claim(unit, 1, Route::Legacy, T0 + 3_600).await;
    assert!(claim.expect("writes").is_some());
    let wrong_step = ledger.close(unit, 0, Ending::Done, T0 + 3_600).await;
    assert_eq!(wrong_step.expect("writes"), Transition::Conflict);
    assert_eq!(
        ledger.begin_send(unit, 1, T0).await.expect("writes"),
        Transition::Done
    );
    let last = ledger.finish(unit, 1, Next::Done, T0 + 3_601).await;
    assert_eq!(last.expect("writes"), Transition::Done);
    let progress = read(ledger, unit).await.expect("exists").progress();
    assert_eq!((progress.state, progress.step), (UnitState::Done, 2));
}
