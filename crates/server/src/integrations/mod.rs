//! Integrations with the places approvers are: chat, e-mail, webhooks (issue 6). Each module
//! turns outside input into something the application can trust, or refuses it, before the
//! application sees it.

pub mod slack;
