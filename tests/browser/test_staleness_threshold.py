"""The browser calls metric data stale with the server's TELEMETRY_STALE_AFTER_SECONDS, not a copy
of its default: the "data as of" line and the charts' age both follow the setting."""


def test_the_browser_uses_the_servers_staleness_threshold(logged_in_page, settings):
    settings.TELEMETRY_STALE_AFTER_SECONDS = 120  # far below the 15 min default
    page = logged_in_page("viewer")
    page.goto("/")
    page.wait_for_function("!!window.ControlPlane")
    ages = page.evaluate(
        """() => {
        const shown = [];
        for (const minutes of [1, 4]) {
          const el = document.createElement('span');
          el.dataset.asOf = new Date(Date.now() - minutes * 60000).toISOString();
          document.body.append(el);
          ControlPlane.refreshTimes(document.body);
          shown.push([el.textContent, el.classList.contains('metric-age-stale')]);
        }
        return shown;
    }"""
    )
    assert ages[0][0].endswith("(1 min ago)") and ages[0][1] is False
    assert ages[1][0].endswith("(4 min ago)") and ages[1][1] is True
    assert page.js_errors == []
