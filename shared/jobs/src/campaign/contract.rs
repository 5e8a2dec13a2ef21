//! The contract of the campaign ports, as one suite: the in-memory adapters run it in
//! this crate's unit tests, the DynamoDB ones against moto in the integration tests.
//! Times are real (a released lease ends "now"); ids are the caller's.

use chrono::Utc;
use symphony_core::{Route, Transition};

use super::model::{Campaign, CampaignStatus, Lead, LeadStatus};
use super::ports::{CampaignStore, LeadNext, LeadStore, Quota, SendQuota};

/// `store` holds `active` (active, never leased) and `paused` (paused).
pub async fn check_campaigns(store: &dyn CampaignStore, active: &Campaign, paused: &Campaign) {
    let now = Utc::now().timestamp();
    let id = active.campaign_id.as_str();
    let listed = |due: Vec<Campaign>| -> Vec<String> {
        due.into_iter()
            .map(|campaign| campaign.campaign_id)
            .filter(|found| found == id || *found == paused.campaign_id)
            .collect()
    };
    let found = store.fetch_active(1_000, now).await.expect("reads");
    assert_eq!(
        listed(found.units),
        [id],
        "only the active campaign is listed"
    );
    assert_eq!(store.get(id).await.expect("reads").as_ref(), Some(active));

    let lease = store.lease(id, Route::Symphony, now, now + 600).await;
    let lease = lease.expect("writes").expect("a free campaign is leased");
    let again = store.lease(id, Route::Legacy, now, now + 600).await;
    assert_eq!(
        again.expect("writes"),
        None,
        "a leased campaign is not leased twice"
    );
    let found = store.fetch_active(1_000, now).await.expect("reads");
    assert!(
        listed(found.units).is_empty(),
        "a leased campaign is not listed"
    );
    let paused_lease = store.lease(&paused.campaign_id, Route::Symphony, now, now + 600);
    assert_eq!(
        paused_lease.await.expect("writes"),
        None,
        "a paused one is never leased"
    );

    let stale = symphony_core::Claim {
        token: "another".into(),
        ..lease.clone()
    };
    assert_eq!(
        store.release(&stale).await.expect("writes"),
        Transition::Conflict
    );
    assert_eq!(
        store.release(&lease).await.expect("writes"),
        Transition::Done
    );
    let later = Utc::now().timestamp() + 1;
    let after = store.lease(id, Route::Legacy, later, later + 600).await;
    assert!(
        after.expect("writes").is_some(),
        "a released lease has ended"
    );

    assert_eq!(store.complete(id).await.expect("writes"), Transition::Done);
    assert_eq!(
        store.complete(id).await.expect("writes"),
        Transition::Conflict
    );
    let completed = store.get(id).await.expect("reads").expect("exists");
    assert_eq!(completed.status, CampaignStatus::Completed);
    let far = later + 10_000;
    assert_eq!(
        store
            .lease(id, Route::Symphony, far, far + 600)
            .await
            .expect("writes"),
        None
    );
    store.record_error(id, "a reason").await.expect("writes");
}

/// `store` holds, in campaign `campaign_id`, `due` (active at step 0, due), `waiting`
/// (active, due in an hour) and `finished`.
pub async fn check_leads(store: &dyn LeadStore, due: &Lead, waiting: &Lead, finished: &Lead) {
    let now = Utc::now().timestamp();
    let campaign = due.campaign_id.as_str();
    let ids = |leads: Vec<Lead>| {
        leads
            .into_iter()
            .map(|lead| lead.lead_id)
            .collect::<Vec<_>>()
    };
    let found = store.due(campaign, now, 100).await.expect("reads");
    assert_eq!(
        ids(found.units),
        vec![due.lead_id.clone()],
        "only the due lead"
    );
    assert!(!store.all_settled(campaign).await.expect("reads"));

    let next = LeadNext::Step {
        index: 1,
        due_at: now + 86_400,
    };
    assert_eq!(
        store.advance(due, 0, next).await.expect("writes"),
        Transition::Done
    );
    let twice = store.advance(due, 0, next).await.expect("writes");
    assert_eq!(twice, Transition::Conflict, "a step moves on once");
    assert!(
        store
            .due(campaign, now, 100)
            .await
            .expect("reads")
            .units
            .is_empty()
    );
    let at_finish = store.advance(finished, finished.current_step, LeadNext::Finished);
    assert_eq!(at_finish.await.expect("writes"), Transition::Conflict);

    assert_eq!(
        store.fail(waiting, "bad").await.expect("writes"),
        Transition::Done
    );
    assert_eq!(
        store.fail(waiting, "bad").await.expect("writes"),
        Transition::Conflict
    );
    let last = store
        .advance(due, 1, LeadNext::Finished)
        .await
        .expect("writes");
    assert_eq!(last, Transition::Done);
    assert!(
        store.all_settled(campaign).await.expect("reads"),
        "no active lead is left"
    );
    let after = store.due(campaign, now + 90_000, 100).await.expect("reads");
    assert!(
        after
            .units
            .iter()
            .all(|lead| lead.status == LeadStatus::Active),
        "a finished or failed lead is never due"
    );
    assert!(
        after.units.is_empty(),
        "every lead of the campaign has ended"
    );
}

/// Reservations of a mailbox's day are idempotent per email and never pass the limit.
pub async fn check_quota(quota: &dyn SendQuota, mailbox_id: &str) {
    let day = "2026-06-01";
    let reserve = |email: &'static str| quota.reserve(mailbox_id, day, email, 2);
    assert_eq!(reserve("e1").await.expect("writes"), Quota::Reserved);
    assert_eq!(
        reserve("e1").await.expect("writes"),
        Quota::Reserved,
        "the same email"
    );
    assert_eq!(reserve("e2").await.expect("writes"), Quota::Reserved);
    assert_eq!(reserve("e3").await.expect("writes"), Quota::Full);
    assert_eq!(
        reserve("e2").await.expect("writes"),
        Quota::Reserved,
        "already held"
    );
    let other_day = quota.reserve(mailbox_id, "2026-06-02", "e3", 2);
    assert_eq!(
        other_day.await.expect("writes"),
        Quota::Reserved,
        "a new day"
    );
}
