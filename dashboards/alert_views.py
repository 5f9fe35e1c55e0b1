"""Alerts in the browser: incidents grouped per SLO (acknowledge, delivery log), silences (with a
preview of what they would silence now), notification channels (create, send a test) and routes,
and the demo receiver."""

from django.http import HttpResponse


def incidents(request):
    return HttpResponse("todo")


incident_acknowledge = silences = silence_end = channels = channel_test = routes = demo_receiver = incidents
