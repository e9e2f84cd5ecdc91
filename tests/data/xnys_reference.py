"""Regenerates tests/data/xnys_2000_2035.csv, the reference the calendar tests compare against.

Source: the `exchange_calendars` package (PyPI, XNYS calendar), which encodes the NYSE's
published holiday and early-close schedules, including unscheduled closures. Run with
`pip install exchange_calendars==4.13.2 && python tests/data/xnys_reference.py`.

The file lists every weekday that is NOT a session (`closed`) and every session that does not
run the full 09:30-16:00 America/New_York day (`early` with its close time); every other weekday
from 2000-01-01 to 2035-12-31 is a regular session.
"""

import exchange_calendars as xc
import pandas as pd

FIRST, LAST = "2000-01-01", "2035-12-31"

cal = xc.get_calendar("XNYS", start=FIRST, end=LAST)
sessions = set(cal.sessions)
print(f"# XNYS reference from exchange_calendars {xc.__version__}, {FIRST}..{LAST}")
print("date,kind,close_new_york")
for day in pd.date_range(FIRST, LAST, freq="D"):
    if day.weekday() >= 5:
        continue
    if day not in sessions:
        print(f"{day.date()},closed,")
        continue
    opens = cal.session_open(day).tz_convert("America/New_York")
    closes = cal.session_close(day).tz_convert("America/New_York")
    assert (opens.hour, opens.minute) == (9, 30), day
    if (closes.hour, closes.minute) != (16, 0):
        print(f"{day.date()},early,{closes:%H:%M}")
