from flowml.plugins import load_registry

STD_TYPES = {"capture.pattern", "capture.image", "image.resize", "image.color", "image.flip",
             "image.composite", "python.function", "output.images", "output.image"}


def test_std_types_come_from_the_entry_point_with_docs():
    registry = load_registry()
    assert not [f for f in registry.failures if f.plugin == "std"]
    for name in STD_TYPES:
        node_type = registry.get(name)
        assert node_type is not None and node_type.distribution == "flowml-std"
        assert node_type.cls.describe(), f"{name} has no docstring summary"
        for field_name, field in node_type.cls.Params.model_fields.items():
            assert field.description, f"{name}.{field_name} has no description"
