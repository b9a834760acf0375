from django.contrib import admin

from vetpacs.apps.devices.models import Command, Gateway, Record


@admin.register(Gateway)
class GatewayAdmin(admin.ModelAdmin):
    list_display = ("name", "organisation", "state", "last_seen_at", "version", "queue_depth", "failures")
    list_filter = ("state",)
    search_fields = ("name", "key_id", "hostname")


@admin.register(Command)
class CommandAdmin(admin.ModelAdmin):
    list_display = ("id", "gateway", "kind", "state", "created_at", "acked_at")
    list_filter = ("state", "kind")


@admin.register(Record)
class RecordAdmin(admin.ModelAdmin):
    list_display = ("id", "organisation", "kind", "patient_id", "accession_number", "updated_at")
    search_fields = ("patient_id", "accession_number")
