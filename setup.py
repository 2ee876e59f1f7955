"""Map the top-level `shared/` and `services/` folders into `continuum.*`.

Everything else about the distribution lives in pyproject.toml.
"""

from setuptools import find_packages, setup

NAMESPACE = "continuum"
SOURCE_FOLDERS = ("shared", "services")

packages = []
package_dir = {}
for folder in SOURCE_FOLDERS:
    package_dir[f"{NAMESPACE}.{folder}"] = folder
    packages.append(f"{NAMESPACE}.{folder}")
    packages.extend(f"{NAMESPACE}.{folder}.{sub}" for sub in find_packages(folder))

setup(packages=packages, package_dir=package_dir)
