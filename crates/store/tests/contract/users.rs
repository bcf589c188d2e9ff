use crate::harness::{user, Ctx, PASSWORD};
use msgrelay_core::Role;
use msgrelay_store::StoreError;
use std::time::Duration;

pub async fn users_create_and_login(ctx: Ctx) {
    let s = &ctx.store;
    let alice = user(s, "alice", Role::User).await;
    assert_eq!(
        (
            alice.username.as_str(),
            alice.role,
            alice.disabled,
            alice.last_login_at_ms
        ),
        ("alice", Role::User, false, None)
    );
    assert!(matches!(
        s.create_user("alice", PASSWORD, Role::Admin).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.create_user("Alice!", PASSWORD, Role::User).await,
        Err(StoreError::Invalid {
            field: "username",
            ..
        })
    ));
    assert!(matches!(
        s.create_user("carol", "short", Role::User).await,
        Err(StoreError::Invalid {
            field: "password",
            ..
        })
    ));

    let logged = s.verify_login("alice", PASSWORD).await.unwrap();
    assert_eq!(logged.id, alice.id);
    assert!(logged.last_login_at_ms.is_some());
    assert_eq!(
        s.get_user(alice.id)
            .await
            .unwrap()
            .unwrap()
            .last_login_at_ms,
        logged.last_login_at_ms
    );
    assert!(matches!(
        s.verify_login("alice", "wrong password!!").await,
        Err(StoreError::BadCredentials)
    ));
    assert!(matches!(
        s.verify_login("nobody", PASSWORD).await,
        Err(StoreError::BadCredentials)
    ));

    s.set_user_disabled("alice", true).await.unwrap();
    assert!(matches!(
        s.verify_login("alice", PASSWORD).await,
        Err(StoreError::BadCredentials)
    ));
    assert!(s.get_user_by_name("alice").await.unwrap().unwrap().disabled);
    s.set_user_disabled("alice", false).await.unwrap();
    s.verify_login("alice", PASSWORD).await.unwrap();
    assert!(matches!(
        s.set_user_disabled("nobody", true).await,
        Err(StoreError::NotFound(_))
    ));

    user(s, "bob", Role::User).await;
    s.set_user_role("bob", Role::Admin).await.unwrap();
    assert!(matches!(
        s.set_user_role("nobody", Role::Admin).await,
        Err(StoreError::NotFound(_))
    ));
    let all = s.list_users().await.unwrap();
    let names: Vec<_> = all.iter().map(|u| (u.username.as_str(), u.role)).collect();
    assert_eq!(names, [("alice", Role::User), ("bob", Role::Admin)]);
    assert!(s.get_user(9_999_999).await.unwrap().is_none());
    // The password hash never leaves the store.
    assert!(!format!("{all:?}").contains("argon2"));
}

pub async fn disabling_and_reset_end_sessions(ctx: Ctx) {
    let s = &ctx.store;
    let alice = user(s, "alice", Role::User).await;
    let bob = user(s, "bob", Role::User).await;
    let ttl = Duration::from_secs(600);

    let session = s.create_session(alice.id, ttl).await.unwrap();
    let (_, token) = s.create_api_token("alice", "ci").await.unwrap();
    let bob_session = s.create_session(bob.id, ttl).await.unwrap();
    let (_, bob_token) = s.create_api_token("bob", "ci").await.unwrap();
    assert!(s.get_session(&session.token).await.unwrap().is_some());
    s.reset_password("alice", "a brand new password")
        .await
        .unwrap();
    assert!(s.get_session(&session.token).await.unwrap().is_none());
    assert!(
        s.authenticate_api_token(&token).await.unwrap().is_none(),
        "a password reset revokes the user's tokens"
    );
    assert!(s.get_session(&bob_session.token).await.unwrap().is_some());
    assert!(s
        .authenticate_api_token(&bob_token)
        .await
        .unwrap()
        .is_some());
    assert!(matches!(
        s.verify_login("alice", PASSWORD).await,
        Err(StoreError::BadCredentials)
    ));
    s.verify_login("alice", "a brand new password")
        .await
        .unwrap();
    assert!(matches!(
        s.reset_password("alice", "short").await,
        Err(StoreError::Invalid { .. })
    ));
    assert!(matches!(
        s.reset_password("nobody", "long enough password").await,
        Err(StoreError::NotFound(_))
    ));

    let session = s.create_session(alice.id, ttl).await.unwrap();
    let (_, token) = s.create_api_token("alice", "ci").await.unwrap();
    s.set_user_disabled("alice", true).await.unwrap();
    assert!(s.get_session(&session.token).await.unwrap().is_none());
    s.set_user_disabled("alice", false).await.unwrap();
    assert!(
        s.get_session(&session.token).await.unwrap().is_none(),
        "sessions stay deleted"
    );
    assert!(
        s.authenticate_api_token(&token).await.unwrap().is_none(),
        "tokens stay revoked"
    );
    assert!(s
        .list_api_tokens(Some(alice.id))
        .await
        .unwrap()
        .iter()
        .all(|t| t.revoked_at_ms.is_some()));

    // Revoking credentials directly (e.g. a password change by the user).
    let session = s.create_session(bob.id, ttl).await.unwrap();
    s.revoke_user_credentials("bob").await.unwrap();
    assert!(s.get_session(&session.token).await.unwrap().is_none());
    assert!(s.get_session(&bob_session.token).await.unwrap().is_none());
    assert!(s
        .authenticate_api_token(&bob_token)
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        s.revoke_user_credentials("nobody").await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn sql_metacharacters_in_names_are_data(ctx: Ctx) {
    let s = &ctx.store;
    user(s, "alice", Role::User).await;
    for evil in [
        "alice' OR '1'='1",
        "alice\"; DROP TABLE users; --",
        "%",
        "_____",
    ] {
        assert!(s.get_user_by_name(evil).await.unwrap().is_none(), "{evil}");
        assert!(matches!(
            s.verify_login(evil, PASSWORD).await,
            Err(StoreError::BadCredentials)
        ));
        assert!(matches!(
            s.set_user_disabled(evil, true).await,
            Err(StoreError::NotFound(_))
        ));
    }
    assert_eq!(s.list_users().await.unwrap().len(), 1);
}
