//! What the dashboard changes, when actions are enabled: every action is a `POST` with the
//! dashboard's CSRF token, answered first by a confirmation page (a form that posts it again
//! with `confirm=yes`), so nothing changes on a single stray click, JavaScript or not.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::Shared;
use super::pages::{Base, PageError, home, layout, strike_fields};
use crate::strike::Strike;

/// The fields an action form sends; each action reads those it needs.
#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    csrf: String,
    #[serde(default)]
    back: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    task: String,
    #[serde(default)]
    param: String,
    #[serde(default)]
    op: String,
    #[serde(default)]
    value: String,
}

/// One change to the docket.
#[derive(Debug, Clone, PartialEq)]
enum Action {
    Replay(String),
    ReplayAll,
    Delete(String),
    Cancel(String),
    Strike(Strike),
    Restore(Strike),
}

impl Action {
    /// The action `name` with the fields of `form`.
    fn read(name: &str, form: &ActionForm) -> Result<Action, String> {
        let key = || match form.key.is_empty() {
            true => Err(format!("`{name}` needs a task key.")),
            false => Ok(form.key.clone()),
        };
        Ok(match name {
            "replay" => Action::Replay(key()?),
            "replay-all" => Action::ReplayAll,
            "delete" => Action::Delete(key()?),
            "cancel" => Action::Cancel(key()?),
            "strike" => Action::Strike(strike_of(form)?),
            "restore" => Action::Restore(strike_of(form)?),
            other => return Err(format!("There is no action `{other}`.")),
        })
    }

    /// What it does, for the confirmation page.
    fn describe(&self) -> String {
        match self {
            Action::Replay(key) => {
                format!("Replay the dead letter {key} (queue it again as a first attempt).")
            }
            Action::ReplayAll => "Replay every dead letter.".into(),
            Action::Delete(key) => format!("Delete the dead letter {key}, for good."),
            Action::Cancel(key) => {
                format!("Cancel the task {key}: remove it if it waits, stop it if it runs.")
            }
            Action::Strike(strike) => {
                format!("Hold every task matching `{strike}`, on every worker, until restored.")
            }
            Action::Restore(strike) => {
                format!("Restore `{strike}`: lift the strike and queue the tasks it holds.")
            }
        }
    }
}

/// A strike from the form's task, and its condition when an argument is named.
fn strike_of(form: &ActionForm) -> Result<Strike, String> {
    let task = form.task.trim();
    let strike = match task {
        "" => return Err("A strike needs a task name, or `*` for every task.".into()),
        "*" => Strike::any(),
        task => Strike::task(task),
    };
    let param = form.param.trim();
    if param.is_empty() {
        if task == "*" {
            return Err("Striking every task needs a condition on an argument.".into());
        }
        return Ok(strike);
    }
    let op = form
        .op
        .parse()
        .map_err(|error: crate::Error| error.to_string())?;
    let value = serde_json::from_str(&form.value)
        .unwrap_or_else(|_| serde_json::Value::String(form.value.clone()));
    Ok(strike.when(param, op, value))
}

/// `POST /actions/{action}`: confirm, then do.
pub(super) async fn act(
    State(app): State<Shared>,
    base: Base,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes() == b"cross-site");
    if cross_site || !same(form.csrf.as_bytes(), app.csrf.as_bytes()) {
        return Ok((
            StatusCode::FORBIDDEN,
            "This form did not come from this dashboard (its CSRF token is missing or stale): reload the page and try again.\n",
        )
            .into_response());
    }
    let action = Action::read(&name, &form).map_err(PageError::BadRequest)?;
    let b = &base.0;
    // Only a path of this dashboard: the link back never leaves it.
    let inside = form.back.starts_with(&format!("{b}/")) || form.back == home(b);
    let back = match inside && !form.back.starts_with("//") {
        true => form.back.clone(),
        false => home(b),
    };
    if form.confirm != "yes" {
        let content = confirmation(&app, b, &name, &form, &action, &back);
        return Ok(layout(&app, &base, "Confirm", content).into_response());
    }
    let done = perform(&app, &action).await;
    app.live.forget().await;
    let done = done?;
    let content = html! {
        h1 { "Done" }
        p role="status" { (done) }
        p { a href=(back) { "Back" } }
    };
    Ok(layout(&app, &base, "Done", content).into_response())
}

/// The page that asks to confirm `action`: the same form, with `confirm=yes`.
fn confirmation(
    app: &Shared,
    b: &str,
    name: &str,
    form: &ActionForm,
    action: &Action,
    back: &str,
) -> Markup {
    let mut fields: Vec<(&str, String)> = Vec::new();
    match action {
        Action::Replay(key) | Action::Delete(key) | Action::Cancel(key) => {
            fields.push(("key", key.clone()))
        }
        Action::Strike(strike) | Action::Restore(strike) => fields.extend(strike_fields(strike)),
        Action::ReplayAll => {}
    }
    let _ = form;
    html! {
        h1 { "Confirm" }
        p #confirm-what { (action.describe()) }
        form method="post" action=(format!("{b}/actions/{name}")) aria-describedby="confirm-what" {
            input type="hidden" name="csrf" value=(app.csrf);
            input type="hidden" name="back" value=(back);
            input type="hidden" name="confirm" value="yes";
            @for (field, value) in &fields { input type="hidden" name=(field) value=(value); }
            button #confirm type="submit" { "Confirm" }
            " "
            a href=(back) { "Cancel" }
        }
    }
}

/// Do `action`; what happened, in a sentence.
async fn perform(app: &Shared, action: &Action) -> Result<String, PageError> {
    let docket = &app.docket;
    Ok(match action {
        Action::Replay(key) => match docket.replay(key).await? {
            true => format!("Replayed {key}."),
            false => format!(
                "{key} was not replayed: no such dead letter, or a live task holds its key."
            ),
        },
        Action::ReplayAll => {
            let mut replayed = 0;
            for dead in docket.dead_letters().await? {
                replayed += usize::from(docket.replay(&dead.key).await?);
            }
            format!("Replayed {replayed} dead letters.")
        }
        Action::Delete(key) => match docket.remove_dead_letter(key).await? {
            true => format!("Deleted the dead letter {key}."),
            false => format!("There was no dead letter {key}."),
        },
        Action::Cancel(key) => match docket.cancel(key).await? {
            true => format!("Cancelled {key}."),
            false => format!("No task {key} was waiting or running."),
        },
        Action::Strike(strike) => match docket.strike(strike.clone()).await? {
            true => format!("Struck `{strike}`."),
            false => format!("`{strike}` was already in force."),
        },
        Action::Restore(strike) => {
            let released = docket.restore(strike.clone()).await?;
            format!("Restored `{strike}`; {released} held tasks queued again.")
        }
    })
}

/// Whether `a` and `b` are equal, in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(task: &str, param: &str, op: &str, value: &str) -> ActionForm {
        ActionForm {
            csrf: String::new(),
            back: String::new(),
            confirm: String::new(),
            key: String::new(),
            task: task.into(),
            param: param.into(),
            op: op.into(),
            value: value.into(),
        }
    }

    #[test]
    fn a_strike_form_reads_as_the_cli_does() {
        let strike = Action::read("strike", &form("scan", "", "==", "")).unwrap();
        assert_eq!(strike, Action::Strike(Strike::task("scan")));
        let strike = Action::read("restore", &form("scan", "track", ">=", "7")).unwrap();
        let expected = Strike::task("scan").when("track", ">=".parse().unwrap(), 7);
        assert_eq!(strike, Action::Restore(expected));
        let text = Action::read("strike", &form("*", "genre", "==", "rock")).unwrap();
        assert_eq!(
            text,
            Action::Strike(Strike::any().when("genre", crate::strike::Operator::Eq, "rock"))
        );
        assert!(Action::read("strike", &form("*", "", "==", "")).is_err());
        assert!(Action::read("strike", &form("scan", "x", "=~", "1")).is_err());
        assert!(Action::read("replay", &form("", "", "", "")).is_err());
        assert!(Action::read("drop-table", &form("", "", "", "")).is_err());
    }
}
