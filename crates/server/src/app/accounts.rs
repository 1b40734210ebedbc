//! Accounts' credentials over their life: the API tokens an account holds (listed without their
//! secret, revoked one by one), and accounts disabled, enabled again or removed.
//!
//! Must never: show a token, let someone revoke another person's token without being an admin,
//! leave a disabled or removed account anything that still works (tokens, portal sign-ins), or
//! let an admin lock themselves out by disabling or removing their own account.

use super::{App, AppError, Principal, Result, Role};
use crate::store::ApiTokenRow;

/// What happens to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChange {
    /// Nothing it holds works (password, tokens, portal sign-ins) until it is enabled again.
    Disable,
    Enable,
    /// Gone, with its tokens and sign-ins (its history stays in the audit log).
    Remove,
}

impl AccountChange {
    fn action(self) -> &'static str {
        match self {
            AccountChange::Disable => "account.disabled",
            AccountChange::Enable => "account.enabled",
            AccountChange::Remove => "account.removed",
        }
    }
}

impl App {
    /// Unexpired API tokens: the caller's own, or (admins) `account`'s or everyone's.
    pub async fn api_tokens(
        &self,
        caller: &Principal,
        account: Option<&str>,
        everyone: bool,
    ) -> Result<Vec<ApiTokenRow>> {
        let me = caller.require(&[Role::Admin, Role::Approver, Role::Auditor])?;
        let whose = match (account, everyone) {
            (Some(a), _) if a == me.name => Some(a),
            (None, false) => Some(me.name.as_str()),
            (other, _) => {
                caller.require(&[Role::Admin])?;
                other
            }
        };
        Ok(self.store.api_tokens(whose, self.now()).await?)
    }

    /// Revokes API token `id`: the caller's own, or anyone's for an admin.
    pub async fn revoke_api_token(&self, caller: &Principal, id: &str) -> Result<()> {
        let me = caller.require(&[Role::Admin, Role::Approver, Role::Auditor])?;
        if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AppError::BadRequest(
                "a token id is 16 hex digits (elevatectl tokens list)".into(),
            ));
        }
        let only = (!caller.has_role(Role::Admin)).then_some(me.name.as_str());
        let mut tx = self.store.begin().await?;
        let Some(owner) = tx.delete_api_token(&id.to_ascii_lowercase(), only).await? else {
            return Err(AppError::NotFound(format!("you hold no token {id}")));
        };
        tx.append_audit(self.event(
            format!("account:{}", me.name),
            "token.revoked",
            format!("account:{owner}"),
            serde_json::json!({ "token": id }),
        ))
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Disables, enables or removes account `name` (admins; never their own).
    pub async fn change_account_as(
        &self,
        caller: &Principal,
        name: &str,
        change: AccountChange,
    ) -> Result<()> {
        let admin = caller.require(&[Role::Admin])?;
        if admin.name == name && change != AccountChange::Enable {
            return Err(AppError::BadRequest(
                "you cannot disable or remove your own account; ask another admin".into(),
            ));
        }
        self.change_account(&format!("account:{}", admin.name), name, change)
            .await
    }

    /// Disables, enables or removes account `name`, by `actor` (`system` for the server's own
    /// command line).
    pub async fn change_account(
        &self,
        actor: &str,
        name: &str,
        change: AccountChange,
    ) -> Result<()> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        if tx.account_in_tx(name).await?.is_none() {
            return Err(AppError::NotFound(format!("there is no account {name:?}")));
        }
        tx.append_audit(self.event(
            actor,
            change.action(),
            format!("account:{name}"),
            serde_json::json!({}),
        ))
        .await?;
        match change {
            AccountChange::Disable => {
                tx.set_account_disabled(name, Some(now)).await?;
                tx.end_credentials(name).await?;
            }
            AccountChange::Enable => {
                tx.set_account_disabled(name, None).await?;
            }
            AccountChange::Remove => {
                tx.delete_account(name).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
