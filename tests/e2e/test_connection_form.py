"""The Dropbox connection form in the real Airflow UI, driven by headless Chromium."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page

from tests.e2e.browser import logged_in_page, screenshot
from tests.e2e.standalone import ADMIN_PASSWORD, ADMIN_USER, AirflowStandalone
from tests.emulator_process import DEV_APP_KEY, DEV_APP_SECRET, DEV_REFRESH_TOKEN, EmulatorProcess

pytestmark = pytest.mark.slow
CONN_ID = "dropbox_from_ui"


def _press_test(page: Page) -> dict[str, Any]:
    row = page.get_by_role("row").filter(has_text=CONN_ID)
    with page.expect_response("**/api/v2/connections/test") as response:
        row.get_by_role("button", name="Test Connection").click()
    body: dict[str, Any] = response.value.json()
    return body


def _edit_secret(page: Page, secret: str) -> None:
    page.get_by_role("row").filter(has_text=CONN_ID).get_by_role("button", name="Edit Connection").click()
    page.get_by_label("App secret").fill(secret)
    page.get_by_role("button", name="Save").click()
    page.get_by_role("dialog").wait_for(state="hidden")


def test_add_dropbox_connection_test_and_save(
    airflow_stack: AirflowStandalone, e2e_emulator: EmulatorProcess
) -> None:
    emulator = urlsplit(e2e_emulator.base_url)
    with logged_in_page(airflow_stack.base_url, ADMIN_USER, ADMIN_PASSWORD) as page:
        page.goto(f"{airflow_stack.base_url}/connections")
        page.get_by_role("button", name="Add Connection").click()
        page.get_by_label("Connection ID").fill(CONN_ID)
        page.get_by_role("combobox").fill("Dropbox")
        page.keyboard.press("Enter")

        dialog = page.get_by_role("dialog")
        for label in ("API base URL", "Port", "App key", "App secret"):
            assert dialog.get_by_text(label, exact=True).is_visible(), label
        assert dialog.get_by_text("Schema", exact=True).count() == 0, "unused fields are hidden"
        page.get_by_label("API base URL").fill(f"{emulator.scheme}://{emulator.hostname}")
        page.get_by_label("Port").fill(str(emulator.port))
        page.get_by_label("App key").fill(DEV_APP_KEY)
        page.get_by_label("App secret").fill("not-the-app-secret")
        screenshot(page, "connection-form-standard")

        dialog.get_by_role("button", name="Extra Fields", exact=True).click()  # the accordion swaps sections
        for label in (
            "Refresh token",
            "Access token",
            "Root namespace id",
            "Team member id",
            "CA bundle",
            "Timeout (s)",
            "Retry deadline (s)",
        ):
            assert dialog.get_by_text(label).first.is_visible(), label
        page.locator("#element_refresh_token").fill(DEV_REFRESH_TOKEN)
        screenshot(page, "connection-form-extra")
        page.get_by_role("button", name="Save").click()
        dialog.wait_for(state="hidden")
        assert page.get_by_role("row").filter(has_text=CONN_ID).count() == 1
        screenshot(page, "connection-listed")

        failed = _press_test(page)
        screenshot(page, "connection-test-wrong-secret")
        assert failed["status"] is False
        assert "secret" in failed["message"].lower()
        assert "not-the-app-secret" not in failed["message"]

        _edit_secret(page, DEV_APP_SECRET)
        passed = _press_test(page)
        screenshot(page, "connection-test-success")
        assert passed["status"] is True, passed
        assert passed["message"].startswith("Connected as ")
