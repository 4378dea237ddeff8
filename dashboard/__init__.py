"""The Reflex dashboard (app_name="dashboard"); the app object is in `dashboard.dashboard`."""
