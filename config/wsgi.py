"""The WSGI application (gunicorn serves it with gunicorn.conf.py, which also warms it up)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
