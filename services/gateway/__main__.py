from services.gateway.main import create_app
from services.kit.service import serve

serve(create_app())
