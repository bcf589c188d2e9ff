use crate::harness::{user, Ctx};
use msgrelay_core::Role;
use msgrelay_store::StoreError;
use std::time::{Duration, Instant};

pub async fn sessions_expire_and_delete(ctx: Ctx) {
    let s = &ctx.store;
    let alice = user(s, "alice", Role::Admin).await;

    let session = s
        .create_session(alice.id, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(session.token.len(), 43);
    assert!(!format!("{session:?}").contains(&session.token));
    let (who, csrf) = s.get_session(&session.token).await.unwrap().unwrap();
    assert_eq!((who.id, who.role), (alice.id, Role::Admin));
    assert_eq!(csrf, session.csrf_token);
    assert!(s.get_session("not-a-token").await.unwrap().is_none());
    s.delete_session(&session.token).await.unwrap();
    assert!(s.get_session(&session.token).await.unwrap().is_none());
    s.delete_session(&session.token).await.unwrap();

    // Expiry is about wall-clock time, so this part waits. Each use slides the expiry:
    // six uses 250 ms apart outlive a 1 s ttl; then 1.3 s without use ends the session.
    let ttl = Duration::from_secs(1);
    let sliding = s.create_session(alice.id, ttl).await.unwrap();
    let started = Instant::now();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(
            s.get_session(&sliding.token).await.unwrap().is_some(),
            "use slides the expiry"
        );
    }
    assert!(started.elapsed() > ttl);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(
        s.get_session(&sliding.token).await.unwrap().is_none(),
        "idle session expired"
    );

    assert!(matches!(
        s.create_session(9_999_999, Duration::from_secs(60)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.create_session(alice.id, Duration::ZERO).await,
        Err(StoreError::Invalid { .. })
    ));
}

pub async fn api_tokens_lifecycle(ctx: Ctx) {
    let s = &ctx.store;
    let alice = user(s, "alice", Role::User).await;
    let bob = user(s, "bob", Role::User).await;

    let (id, raw) = s.create_api_token("alice", "ci").await.unwrap();
    assert!(raw.starts_with("mrt_"));
    let (bob_id, _) = s.create_api_token("bob", "laptop").await.unwrap();
    assert_ne!(id, bob_id);
    assert!(matches!(
        s.create_api_token("nobody", "x").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.create_api_token("alice", "").await,
        Err(StoreError::Invalid { .. })
    ));

    assert_eq!(
        s.authenticate_api_token(&raw).await.unwrap().unwrap().id,
        alice.id
    );
    assert!(s
        .authenticate_api_token("mrt_wrong")
        .await
        .unwrap()
        .is_none());
    assert!(s
        .authenticate_api_token(raw.trim_start_matches("mrt_"))
        .await
        .unwrap()
        .is_none());

    let mine = s.list_api_tokens(Some(alice.id)).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(
        (mine[0].id, mine[0].name.as_str(), mine[0].username.as_str()),
        (id, "ci", "alice")
    );
    assert!(mine[0].last_used_at_ms.is_some());
    assert!(!format!("{mine:?}").contains(&raw[4..]));
    assert_eq!(s.list_api_tokens(None).await.unwrap().len(), 2);
    assert_eq!(s.list_api_tokens(Some(bob.id)).await.unwrap()[0].id, bob_id);

    s.set_user_disabled("alice", true).await.unwrap();
    assert!(s.authenticate_api_token(&raw).await.unwrap().is_none());
    s.set_user_disabled("alice", false).await.unwrap();
    assert!(s.authenticate_api_token(&raw).await.unwrap().is_some());

    s.revoke_api_token(id).await.unwrap();
    s.revoke_api_token(id).await.unwrap();
    assert!(s.authenticate_api_token(&raw).await.unwrap().is_none());
    assert!(s.list_api_tokens(Some(alice.id)).await.unwrap()[0]
        .revoked_at_ms
        .is_some());
    assert!(matches!(
        s.revoke_api_token(9_999_999).await,
        Err(StoreError::NotFound(_))
    ));
}
