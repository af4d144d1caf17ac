"""The qlik-email policy pack: ``pulumi preview --policy-pack <this directory>``.

The CLI runs this file as a script with the Python that has ``qlik_email_resource``
installed (PulumiPolicy.yaml names no virtualenv), so the pack is reached by its
package name; the rules live in ``rules.py`` beside this file.
"""

from qlik_email_resource.policy_pack import serve

serve()
