//! The OpenAPI documents served at `/openapi/*.json` are checked into `docs/openapi/`; this fails
//! when they are stale. `UPDATE_OPENAPI=1 cargo test --workspace --test it openapi` rewrites them.

use std::path::PathBuf;

use crate::support::{spawn_app, Session};

#[tokio::test]
async fn checked_in_openapi_documents_are_current() {
    let app = spawn_app().await;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi");
    let update = std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for name in ["proxy", "internal", "portal"] {
        let r = app
            .get(&format!("/openapi/{name}.json"), &Session::default())
            .await;
        assert_eq!(r.status, 200, "{name}");
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
        assert!(
            v["paths"].as_object().is_some_and(|p| !p.is_empty()),
            "{name}: no paths"
        );
        let pretty = serde_json::to_string_pretty(&v).unwrap() + "\n";
        let file = dir.join(format!("{name}.json"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&file, &pretty).unwrap();
        } else if std::fs::read_to_string(&file).ok().as_deref() != Some(pretty.as_str()) {
            stale.push(file.display().to_string());
        }
    }
    assert!(stale.is_empty(), "stale OpenAPI documents (run `UPDATE_OPENAPI=1 cargo test --workspace --test it openapi`): {stale:?}");
    // The portal document covers the handlers the portal actually serves.
    let doc: serde_json::Value = serde_json::from_str(
        &app.get("/openapi/portal.json", &Session::default())
            .await
            .body,
    )
    .unwrap();
    for p in [
        "/api/v1/auth/login",
        "/api/v1/messages",
        "/api/v1/messages/{id}",
        "/api/v1/admin/users",
        "/api/v1/admin/maintenance/purge",
    ] {
        assert!(doc["paths"].get(p).is_some(), "portal.json lacks {p}");
    }
    let ui = app.get("/docs/", &Session::default()).await;
    assert!(
        ui.body.contains("swagger-ui"),
        "Swagger UI served from the binary"
    );
}
