from services.kit.service import serve
from services.builder.main import create_app

serve(create_app())
