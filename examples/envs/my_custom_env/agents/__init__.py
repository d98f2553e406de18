"""Agent configurations of ``MyCustom-Robot-v0`` (beside the package, as in the user guide's tree)."""
