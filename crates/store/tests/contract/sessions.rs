use crate::harness::{user, Ctx};
use msgrelay_core::{now_ms, Role};
use msgrelay_store::{StoreError, TokenScope, DEFAULT_TOKEN_DAYS};
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

    // The absolute lifetime ends a session however busy it is: uses every 250 ms slide the
    // 10 s idle timeout, but the session still ends 1 s after it began.
    let capped = s
        .open_session(alice.id, Duration::from_secs(10), Duration::from_secs(1))
        .await
        .unwrap();
    assert!(capped.expires_at_ms <= capped.absolute_expires_at_ms);
    let started = Instant::now();
    let mut uses = 0;
    while s.get_session(&capped.token).await.unwrap().is_some() {
        uses += 1;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the absolute lifetime ends the session"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        uses >= 2 && started.elapsed() >= Duration::from_millis(900),
        "{uses} uses"
    );
    assert!(matches!(
        s.open_session(alice.id, Duration::from_secs(10), Duration::ZERO)
            .await,
        Err(StoreError::Invalid { .. })
    ));

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

pub async fn api_token_scopes_and_expiry(ctx: Ctx) {
    let s = &ctx.store;
    let boss = user(s, "boss", Role::Admin).await;
    user(s, "alice", Role::User).await;

    // Default: read scope, 90 days.
    let (id, raw) = s.create_api_token("alice", "ci").await.unwrap();
    let auth = s
        .authenticate_scoped_api_token(&raw)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((auth.scope, auth.token_id), (TokenScope::Read, id));
    let listed = &s.list_api_tokens(None).await.unwrap()[0];
    let days = (listed.expires_at_ms - listed.created_at_ms) / (24 * 3600 * 1000);
    assert_eq!(days, i64::from(DEFAULT_TOKEN_DAYS));
    assert!(listed.is_active(now_ms()));

    // Admin scope only for administrators; lifetime per token, bounded.
    let admin = s
        .create_scoped_api_token("boss", "ops", TokenScope::Admin, Some(7))
        .await
        .unwrap();
    assert!(!format!("{admin:?}").contains(&admin.token));
    let auth = s
        .authenticate_scoped_api_token(&admin.token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((auth.user.id, auth.scope), (boss.id, TokenScope::Admin));
    let week = admin.expires_at_ms - now_ms();
    assert!(
        (6 * 24 * 3600 * 1000..=7 * 24 * 3600 * 1000).contains(&week),
        "{week}"
    );
    assert!(matches!(
        s.create_scoped_api_token("alice", "x", TokenScope::Admin, None)
            .await,
        Err(StoreError::Invalid { field: "scope", .. })
    ));
    for days in [0, 3651] {
        assert!(matches!(
            s.create_scoped_api_token("alice", "x", TokenScope::Read, Some(days))
                .await,
            Err(StoreError::Invalid { field: "days", .. })
        ));
    }

    // An expired token authenticates nobody (expiry set in the past by hand).
    let short = s
        .create_scoped_api_token("alice", "short", TokenScope::Read, Some(1))
        .await
        .unwrap();
    assert!(s
        .authenticate_api_token(&short.token)
        .await
        .unwrap()
        .is_some());
    ctx.execute(&format!(
        "UPDATE api_tokens SET expires_at = {} WHERE id = {}",
        now_ms() - 1,
        short.id
    ))
    .await;
    assert!(s
        .authenticate_api_token(&short.token)
        .await
        .unwrap()
        .is_none());
    let listed = s.list_api_tokens(None).await.unwrap();
    let expired = listed.iter().find(|t| t.id == short.id).unwrap();
    assert!(!expired.is_active(now_ms()) && expired.revoked_at_ms.is_none());
}
