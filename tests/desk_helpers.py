"""Desk (supervisor page) sessions for tests that do not go through the login form."""

from conftest import START

from server.auth import hash_token


def desk_session(client, store, username, *, csrf="token", at=START) -> str:
    """Give `client` a live desk session of `username` (any role, as if the role changed after
    login) with a known CSRF token; returns the session id."""
    session_id = f"test-session-{username}"
    user_id = store.user(username=username)["id"]
    store.create_desk_session(hash_token(session_id), user_id, at=at.isoformat())
    with client.session_transaction() as session:
        session["sid"] = session_id
        session["csrf"] = csrf
    return session_id
