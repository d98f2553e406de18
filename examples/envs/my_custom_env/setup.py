"""The user guide's custom environment package: a setup.py, gym.register in __init__.py, no entry point."""

from setuptools import find_packages, setup

setup(
    name="my_custom_env",
    version="0.1.0",
    description="The user guide's 'Simple Custom Cartpole Variant', packaged exactly as the guide says.",
    packages=find_packages(include=["my_custom_env*", "agents*"]),
    package_data={"my_custom_env": ["assets/*.usda"]},
    include_package_data=True,
    python_requires=">=3.10",
    # Isaac Lab is already in the image; the guide's advice is to list only what the env adds.
    install_requires=[],
)
