"""Wire format: content types, request ids, void bodies, 400 texts, 401s, arg/authorization URL params."""

from __future__ import annotations

import json
from pathlib import Path

import requests

from tests.emulator.helpers import Api, summary_ok
from tests.emulator_process import start_emulator

PREFIX = 'Error in call to API function "{}": '


def test_json_content_type_has_no_charset_and_request_id(api: Api) -> None:
    r = api.rpc("users/get_current_account", None)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert len(r.headers["X-Dropbox-Request-Id"]) >= 16
    body = r.json()
    assert body["account_id"].startswith("dbid:") and len(body["account_id"]) == 40
    assert body["root_info"][".tag"] == "user"
    assert body["account_type"] == {".tag": "pro"}


def test_void_route_without_body_or_content_type(api: Api) -> None:
    r = api.http.post(f"{api.base}/2/users/get_current_account", headers=api.auth(), timeout=10)
    assert r.status_code == 200


def test_space_usage(api: Api) -> None:
    usage = api.ok("users/get_space_usage")
    assert usage["allocation"][".tag"] == "individual"
    assert isinstance(usage["used"], int)


def test_request_id_on_errors_too(api: Api) -> None:
    r = api.http.post(f"{api.base}/2/files/get_metadata", data="{}", timeout=10)
    assert r.status_code == 400
    assert r.headers["X-Dropbox-Request-Id"]


def test_missing_authorization_is_plain_text_400(api: Api) -> None:
    r = api.http.post(f"{api.base}/2/files/get_metadata", json={"path": "/x"}, timeout=10)
    assert r.status_code == 400
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.text == PREFIX.format("files/get_metadata") + (
        'Must provide HTTP header "Authorization" or URL parameter "authorization".'
    )


def test_bearer_without_token(api: Api) -> None:
    r = api.http.post(
        f"{api.base}/2/files/get_metadata",
        json={"path": "/x"},
        headers={"Authorization": "Bearer"},
        timeout=10,
    )
    assert r.status_code == 400
    assert 'Expecting "Bearer <oauth2-access-token>".' in r.text
    assert '"Bearer".  Expecting' in r.text


def test_malformed_token_is_400_not_401(api: Api) -> None:
    r = api.http.post(
        f"{api.base}/2/files/get_metadata",
        json={"path": "/x"},
        headers={"Authorization": "Bearer a b"},
        timeout=10,
    )
    assert r.status_code == 400
    assert r.text.endswith("The given OAuth 2 access token is malformed.")


def test_unknown_token_is_401_invalid_access_token(api: Api) -> None:
    r = api.http.post(
        f"{api.base}/2/files/get_metadata",
        json={"path": "/x"},
        headers={"Authorization": "Bearer sl.u.notarealtoken123"},
        timeout=10,
    )
    assert r.status_code == 401
    assert r.headers["Content-Type"] == "application/json"
    assert r.json()["error"] == {".tag": "invalid_access_token"}
    assert summary_ok(r.json(), "invalid_access_token")


def test_rpc_bad_content_type(api: Api) -> None:
    r = api.rpc(
        "users/get_current_account", None, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 400
    assert r.text == PREFIX.format("users/get_current_account") + (
        'Bad HTTP "Content-Type" header: "application/x-www-form-urlencoded".  Expecting one of '
        '"application/json", "application/json; charset=utf-8", "text/plain; charset=dropbox-cors-hack".'
    )


def test_rpc_cors_hack_content_type_accepted(api: Api) -> None:
    r = api.rpc(
        "users/get_current_account", None, headers={"Content-Type": "text/plain; charset=dropbox-cors-hack"}
    )
    assert r.status_code == 200


def test_upload_bad_content_type(api: Api, root: str) -> None:
    r = api.upload_raw(
        "files/upload",
        {"path": root + "/a"},
        b"x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400
    assert r.text.startswith(PREFIX.format("files/upload") + 'Bad HTTP "Content-Type" header')
    assert 'Expecting one of "application/octet-stream", "text/plain; charset=dropbox-cors-hack".' in r.text


def test_rpc_body_not_json(api: Api) -> None:
    r = api.http.post(
        f"{api.base}/2/files/get_metadata",
        data="{nope",
        headers={**api.auth(), "Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 400
    assert r.text == PREFIX.format("files/get_metadata") + "request body: could not decode input as JSON"


def test_raw_utf8_in_arg_header_is_rejected(api: Api, root: str) -> None:
    raw = ('{"path": "' + root + '/caf\u00e9"}').encode("utf-8")
    r = api.http.post(
        f"{api.base}/2/files/upload",
        data=b"x",
        headers={**api.auth(), "Content-Type": "application/octet-stream", "Dropbox-API-Arg": raw},
        timeout=10,
    )
    assert r.status_code == 400
    assert (
        r.text
        == PREFIX.format("files/upload") + 'HTTP header "Dropbox-API-Arg": could not decode input as JSON'
    )


def test_missing_required_field(api: Api) -> None:
    r = api.rpc("files/get_metadata", {})
    assert r.status_code == 400
    assert "missing required field 'path'" in r.text


def test_wrong_type_field(api: Api) -> None:
    r = api.rpc("files/get_metadata", {"path": None})
    assert r.status_code == 400
    assert r.text == PREFIX.format("files/get_metadata") + (
        "request body: path: 'None' expected to be a string, got null"
    )
    r = api.rpc("files/get_metadata", {"path": 5})
    assert r.status_code == 400
    assert "path: '5' expected to be a string, got integer" in r.text


def test_path_pattern_violation(api: Api) -> None:
    r = api.rpc("files/get_metadata", {"path": "no-slash"})
    assert r.status_code == 400
    assert "did not match pattern" in r.text


def test_arg_and_authorization_url_params(api: Api, root: str) -> None:
    arg = json.dumps({"path": root + "/url-param.txt"})
    r = api.http.post(
        f"{api.base}/2/files/upload",
        params={"arg": arg, "authorization": f"Bearer {api.token}"},
        data=b"via params",
        headers={"Content-Type": "text/plain; charset=dropbox-cors-hack"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    r = requests.post(
        f"{api.base}/2/files/download",
        params={"arg": arg, "authorization": f"Bearer {api.token}"},
        timeout=10,
    )
    assert r.status_code == 200 and r.content == b"via params"


def test_download_via_get(api: Api, root: str) -> None:
    api.upload(root + "/g.txt", b"get me")
    r = api.http.get(
        f"{api.base}/2/files/download",
        headers={**api.auth(), "Dropbox-API-Arg": json.dumps({"path": root + "/g.txt"})},
        timeout=10,
    )
    assert r.status_code == 200 and r.content == b"get me"


def test_result_header_is_ascii_escaped(api: Api, root: str) -> None:
    path = root + "/\u00fc\u00f1\u00ee\U0001f600.txt"
    api.upload(path, b"u")
    r = api.download(path)
    raw = r.headers["Dropbox-API-Result"]
    assert raw.isascii()
    assert "\\u00fc" in raw and "\\ud83d\\ude00" in raw
    assert json.loads(raw)["name"] == "\u00fc\u00f1\u00ee\U0001f600.txt"
    assert r.headers["Content-Type"] == "application/octet-stream"


def test_longpoll_rejects_authorization_header(api: Api) -> None:
    cursor = api.ok("files/list_folder/get_latest_cursor", {"path": ""})["cursor"]
    r = api.rpc("files/list_folder/longpoll", {"cursor": cursor, "timeout": 30})
    assert r.status_code == 400
    assert r.text == (
        'Error in call to API function "files/list_folder/longpoll": Your request includes an '
        "Authorization header, but this function does not use it."
    )


def test_error_summary_shape(api: Api) -> None:
    for _ in range(10):
        r = api.rpc("files/get_metadata", {"path": "/definitely/not/here"})
        assert r.status_code == 409
        body = r.json()
        assert body["error"] == {".tag": "path", "path": {".tag": "not_found"}}
        assert summary_ok(body, "path/not_found")


def test_download_rejects_a_content_type(api: Api, root: str) -> None:
    api.upload(root + "/ct.txt", b"x")
    r = api.download(root + "/ct.txt", **{"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400
    assert r.text == PREFIX.format("files/download") + (
        'You provided a non-empty HTTP "Content-Type" header ("application/x-www-form-urlencoded").  '
        "This API function requires that the header be missing or empty."
    )
    r = api.download(root + "/ct.txt", **{"Content-Type": "text/plain; charset=dropbox-cors-hack"})
    assert r.status_code == 200


def test_list_folder_root_as_slash(api: Api) -> None:
    r = api.rpc("files/list_folder", {"path": "/"})
    assert r.status_code == 400
    assert r.text.endswith('path: Specify the root folder as an empty string rather than as "/".')


def test_team_headers_ignored_by_default(api: Api) -> None:
    headers = {
        "Dropbox-API-Select-User": "dbmid:anyone",
        "Dropbox-API-Path-Root": '{".tag": "root", "root": "3235641"}',
    }
    assert api.rpc("users/get_current_account", None, headers=headers).status_code == 200
    r = api.rpc("users/get_current_account", None, headers={"Dropbox-API-Path-Root": "{nope"})
    assert (
        r.status_code == 400
        and 'HTTP header "Dropbox-API-Path-Root": could not decode input as JSON' in r.text
    )


def test_team_headers_validated_in_team_mode(tmp_path: Path) -> None:
    emu = start_emulator(
        tmp_path / "data", "--team-member-id", "dbmid:member1", "--team-root-namespace-id", "4242"
    )
    try:
        api = Api(emu)
        ok = {
            "Dropbox-API-Select-User": "dbmid:member1",
            "Dropbox-API-Path-Root": '{".tag": "root", "root": "4242"}',
        }
        assert api.rpc("users/get_current_account", None, headers=ok).status_code == 200
        r = api.rpc("users/get_current_account", None, headers={"Dropbox-API-Select-User": "dbmid:other"})
        assert r.status_code == 401 and r.json()["error"] == {".tag": "invalid_select_user"}
        r = api.rpc(
            "users/get_current_account",
            None,
            headers={"Dropbox-API-Path-Root": '{".tag": "namespace_id", "namespace_id": "1"}'},
        )
        assert r.status_code == 422
        assert r.json()["error"][".tag"] == "invalid_root"
        assert r.json()["error"]["invalid_root"]["root_namespace_id"]
        home = {"Dropbox-API-Path-Root": '{".tag": "home"}'}
        assert api.rpc("users/get_current_account", None, headers=home).status_code == 200
    finally:
        emu.stop()
