//! `GET /`: the page for people: this process's info and a chat room client, one HTML file built
//! into the binary. The info is put in the page by the process that serves it.

use hyper::StatusCode;

use super::{with_type, Response};
use crate::http::state::AppState;

const PAGE: &str = include_str!("page.html");

pub fn get(app: &AppState, client: &str) -> Response {
    let info = super::info::describe(app, client);
    // `<` escaped so no value can close the script element holding it.
    let embedded = info.to_string().replace('<', "\\u003c");
    with_type(StatusCode::OK, "text/html; charset=utf-8", PAGE.replace("{{INFO_JSON}}", &embedded))
}
