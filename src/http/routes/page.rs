//! `GET /`: the page for people: this process's info and a chat room client, one HTML file built
//! into the binary. The info is put in the page by the process that serves it.

use hyper::{Request, StatusCode};

use crate::http::context::Ctx;
use crate::http::response::{with_type, Answer};

const PAGE: &str = include_str!("page.html");

pub(crate) async fn get<B>(ctx: &Ctx, req: Request<B>) -> Answer {
    let info = super::info::describe(&ctx.app, &ctx.client(req.headers()).to_string());
    // `<` escaped so no value can close the script element holding it.
    let embedded = info.replace('<', "\\u003c");
    Ok(with_type(StatusCode::OK, "text/html; charset=utf-8", PAGE.replace("{{INFO_JSON}}", &embedded)))
}
