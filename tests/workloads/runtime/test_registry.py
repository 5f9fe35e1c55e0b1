import pytest

from workloads.runtime.registry import HandlerNotFound, get_handler, handler, load_handler_modules, unregister


def test_a_handler_is_registered_per_class_and_found_by_slug():
    @handler("registry-test")
    def process(payload, context):
        return {"ok": True}

    try:
        assert get_handler("registry-test") is process
        assert process({}, None) == {"ok": True}  # the decorator returns the function unchanged
    finally:
        unregister("registry-test")
    with pytest.raises(HandlerNotFound, match="No handler is registered for class 'registry-test'"):
        get_handler("registry-test")


def test_a_class_cannot_have_two_handlers():
    @handler("registry-twice")
    def first(payload, context):
        return None

    try:
        with pytest.raises(ValueError, match="already has the handler"):

            @handler("registry-twice")
            def second(payload, context):
                return None
    finally:
        unregister("registry-twice")


def test_the_configured_modules_register_the_demo_handlers(settings):
    settings.WORKER_HANDLER_MODULES = ["demo.handlers"]
    load_handler_modules()
    assert get_handler("policy-evaluation").__name__ == "evaluate"
